"""The learner tools (make progress, hint, reset, solve, diff, doctor, watch), used as a learner would.

Every test works in its own git clone of the workshop, made from this working tree, so the real steps/
(a learner's work, or another test run's) is never touched. The clone shares this checkout's .venv.
"""

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
from pathlib import Path

import psutil
import pytest
from test_guide import load_hook

from workshop.cli import venv_python
from workshop.ports import free_port
from workshop.steps import ROOT, STEPS

# What a learner's clone needs for the tools and the step checks to run.
CLONED_PATHS = [
    "workshop",
    "steps",
    "solutions",
    "conftest.py",
    "pytest.ini",
    "requirements.txt",
    "Makefile",
    ".gitignore",
    ".python-version",
]
GIT_AS_LEARNER = [
    "git",
    "-c",
    "user.name=Learner",
    "-c",
    "user.email=learner@example.invalid",
]
# make passes these to sub-makes; the clone's make is a make of its own.
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def run(
    command: list[str], cwd: Path, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    environment = {
        key: value for key, value in os.environ.items() if key not in MAKE_VARIABLES
    }
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**environment, **(env or {})},
    )


def make(
    clone: Path, *arguments: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    finished = run(["make", "--no-print-directory", *arguments], clone, env)
    finished.output = finished.stdout + finished.stderr
    return finished


def workshop(
    clone: Path, *arguments: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python -m workshop ...` in the clone, as a learner without make types it."""
    python = venv_python(clone / ".venv")
    finished = run([str(python), "-m", "workshop", *arguments], clone, env)
    finished.output = finished.stdout + finished.stderr
    return finished


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, shipped_tree) -> Path:
    """A git repository holding the workshop as this working tree has it, with steps/ as
    shipped (tests/conftest.py): what a learner clones."""
    repository = tmp_path_factory.mktemp("upstream")
    listed = run(
        [
            "git",
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            *CLONED_PATHS,
        ],
        ROOT,
    )
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file() and not name.startswith("steps/"):
            (repository / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repository / name)
    shutil.copytree(shipped_tree.steps_dir, repository / "steps")
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        ["commit", "-q", "-m", "The workshop"],
    ):
        assert run([*GIT_AS_LEARNER, *command], repository).returncode == 0
    return repository


@pytest.fixture
def clone(upstream, tmp_path) -> Path:
    """A fresh clone of the workshop, as a learner has it after `git clone`."""
    learner = tmp_path / "workshop"
    assert (
        run(["git", "clone", "-q", str(upstream), str(learner)], tmp_path).returncode
        == 0
    )
    (learner / ".venv").symlink_to(ROOT / ".venv")
    # Older than .venv/.installed, so that make in the clone never reinstalls into the shared .venv.
    os.utime(learner / "requirements.txt", (0, 0))
    return learner


def committed(clone: Path, path: str) -> str:
    return run(["git", "show", f"origin/main:{path}"], clone).stdout


def backups(clone: Path, number: int) -> list[Path]:
    return sorted((clone / ".backups").glob(f"step{number}-*"))


def ignored_by_git(clone: Path) -> bool:
    """No file the tools wrote shows up in `git status` (the .venv link is this test set-up's own)."""
    status = run(
        ["git", "status", "--porcelain", "--untracked-files=all"], clone
    ).stdout.splitlines()
    return not [line for line in status if not line.endswith(" .venv")]


def progress_rows(output: str) -> dict[int, str]:
    """Step number -> its row of the `make progress` table."""
    rows = {}
    for line in output.splitlines():
        found = re.match(r"\s+([1-7])\s{2}", line)
        if found:
            rows[int(found.group(1))] = line
    return rows


# --- progress, solve, reset: the "done when" ----------------------------------------------------------


def test_progress_solve_and_reset_on_a_fresh_clone(clone):
    """Fresh clone: all not yet, counted but not run (as handed out); solve 1 and 3: both
    run and pass, old step 3 backed up; reset 3: starter back, so counted and not run
    again, and step 1 is not rerun, unchanged since passing."""
    started = time.monotonic()
    fresh = make(clone, "progress")
    assert fresh.returncode == 0, fresh.output
    rows = progress_rows(fresh.stdout)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 7], fresh.output
    for number, row in rows.items():
        assert re.search(r"\b0 of [1-9]\d*\s+not yet$", row), (
            f"step {number} of a fresh clone: {row!r}\n{fresh.output}"
        )
    assert "Next: step 1," in fresh.stdout
    every = ", ".join(step.key for step in STEPS)
    assert f"(not run: step {every}, as handed out," in fresh.stdout, fresh.output
    assert "(checked " not in fresh.stdout, "nothing was checked: " + fresh.output
    print(f"progress on the untouched starters: {time.monotonic() - started:.1f} s")

    starter = (clone / "steps/step3/app.py").read_text()
    checks = (clone / "steps/step3/test_step3.py").read_text()
    solved = make(clone, "solve", "3")
    assert solved.returncode == 0, solved.output
    assert (clone / "steps/step3/app.py").read_text() == (
        clone / "solutions/step3/app.py"
    ).read_text()
    assert (clone / "steps/step3/test_step3.py").read_text() == checks, (
        "solve must keep the step's checks"
    )
    [backup] = backups(clone, 3)
    assert f"Saved your steps/step3 in {backup.relative_to(clone)}/" in solved.stdout, (
        solved.output
    )
    assert (backup / "app.py").read_text() == starter and (
        backup / "test_step3.py"
    ).is_file()
    assert make(clone, "solve", "1").returncode == 0

    started = time.monotonic()
    after_solve = make(clone, "progress")
    rows = progress_rows(after_solve.stdout)
    for number in (1, 3):
        assert re.search(r"\b(\d+) of \1\s+passed$", rows[number]), (
            f"after make solve {number}: {rows[number]!r}\n{after_solve.output}"
        )
    assert all(rows[number].endswith("not yet") for number in (2, 4, 5, 6, 7)), (
        after_solve.output
    )
    assert "not rerun" not in after_solve.stdout, after_solve.output
    assert "(checked step 1, 3 in " in after_solve.stdout, after_solve.output
    others = ", ".join(step.key for step in STEPS if step.key not in ("1", "3"))
    assert f"(not run: step {others}, as handed out," in after_solve.stdout, (
        after_solve.output
    )
    print(f"progress with steps 1 and 3 solved: {time.monotonic() - started:.1f} s")

    reset = make(clone, "reset", "3")
    assert reset.returncode == 0, reset.output
    assert (
        (clone / "steps/step3/app.py").read_text()
        == starter
        == committed(clone, "steps/step3/app.py")
    )
    first, second = backups(clone, 3)
    assert (
        second != backup
        and f"Saved your steps/step3 in {second.relative_to(clone)}/" in reset.stdout
    )
    assert (second / "app.py").read_text() == (
        clone / "solutions/step3/app.py"
    ).read_text()
    after_reset = make(clone, "progress")
    again = progress_rows(after_reset.stdout)
    assert again[3].endswith("not yet"), (
        f"a changed step runs again:\n{after_reset.output}"
    )
    assert again[1] == rows[1], after_reset.output
    assert "(not rerun: step 1, unchanged since passing;" in after_reset.stdout, (
        after_reset.output
    )
    assert "(not run: step 2, 3, 4," in after_reset.stdout, after_reset.output
    assert make(clone, "reset", "1").returncode == 0
    assert ignored_by_git(clone), run(["git", "status", "--porcelain"], clone).stdout


def test_progress_reports_a_step_whose_checks_hang_and_stops_them(clone):
    with (clone / "steps/step2/test_step2.py").open("a") as checks:
        checks.write(
            "\n\ndef test_that_hangs(server):\n    import time\n    time.sleep(3600)\n"
        )
    progress = workshop(clone, "progress", env={"PROGRESS_STEP_TIMEOUT_SECONDS": "5"})
    assert progress.returncode == 0, progress.output
    row = progress_rows(progress.stdout)[2]
    assert row.endswith(
        "not yet: the checks did not finish within 5 s; `make check 2` shows which hangs"
    ), row
    assert len(progress_rows(progress.stdout)) == 7, progress.output
    assert "(not run: step 1, 3, 4," in progress.stdout, "only step 2 was edited"
    left = processes_running_in(clone)
    for pid in left:  # this test's own leftovers: stop them, then fail
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after the timeout: {left}"


def test_reset_brings_back_the_starter_and_keeps_every_file_of_the_learner(clone):
    (clone / "steps/step2/app.py").write_text("# my own attempt\n")
    (clone / "steps/step2/notes.txt").write_text("what I learned\n")
    reset = workshop(clone, "reset", "2")
    assert reset.returncode == 0, reset.output
    assert (clone / "steps/step2/app.py").read_text() == committed(
        clone, "steps/step2/app.py"
    )
    assert not (clone / "steps/step2/notes.txt").exists(), (
        "reset gives back the starter exactly"
    )
    [backup] = backups(clone, 2)
    assert (backup / "app.py").read_text() == "# my own attempt\n"
    assert (backup / "notes.txt").read_text() == "what I learned\n"
    assert "origin/main" in reset.stdout, (
        f"reset should say where the starter came from:\n{reset.output}"
    )


@pytest.mark.parametrize("branch", ["main", "a branch of their own"])
def test_reset_ignores_work_the_learner_committed(clone, branch):
    if (
        branch != "main"
    ):  # a new branch has no upstream: origin/HEAD then tells where the workshop is
        assert run(["git", "switch", "-q", "-c", "my-work"], clone).returncode == 0
    (clone / "steps/step4/app.py").write_text("# committed work in progress\n")
    assert (
        run(
            [*GIT_AS_LEARNER, "commit", "-q", "-am", "my step 4 so far"], clone
        ).returncode
        == 0
    )
    reset = workshop(clone, "reset", "4")
    assert reset.returncode == 0, reset.output
    assert (clone / "steps/step4/app.py").read_text() == committed(
        clone, "steps/step4/app.py"
    ), (
        f"reset must hand out the upstream starter, not the learner's own commit:\n{reset.output}"
    )
    assert "origin/main" in reset.stdout, reset.output
    assert (
        backups(clone, 4)[0] / "app.py"
    ).read_text() == "# committed work in progress\n"


def test_reset_without_an_upstream_uses_head_and_warns_when_that_is_no_starter(clone):
    assert run(["git", "remote", "remove", "origin"], clone).returncode == 0
    (clone / "steps/step1/app.py").write_text("from cello import App\napp = App()\n")
    assert (
        run([*GIT_AS_LEARNER, "commit", "-q", "-am", "step 1 done"], clone).returncode
        == 0
    )
    (clone / "steps/step1/app.py").write_text("# an edit after the commit\n")
    reset = make(clone, "reset", "1")
    assert reset.returncode == 0, reset.output
    assert "HEAD" in reset.stdout, reset.output
    assert (
        clone / "steps/step1/app.py"
    ).read_text() == "from cello import App\napp = App()\n"
    assert "no TODO(step 1) block" in reset.stdout, reset.output


def test_two_backups_in_the_same_second_are_both_kept(clone):
    for attempt in ("first", "second"):
        (clone / "steps/step6/app.py").write_text(f"# {attempt} attempt\n")
        assert workshop(clone, "reset", "6").returncode == 0
    saved = sorted((backup / "app.py").read_text() for backup in backups(clone, 6))
    assert saved == ["# first attempt\n", "# second attempt\n"], saved


@pytest.mark.parametrize("emptied", ["files removed", "folder removed"])
def test_solve_on_an_emptied_step_brings_its_checks_back(clone, emptied):
    """Regression: `make solve N` on an emptied steps/stepN left the step without its
    checks while saying "(your checks kept)"."""
    folder = clone / "steps/step3"
    for path in folder.iterdir():
        path.unlink()
    if emptied == "folder removed":
        folder.rmdir()
    solved = workshop(clone, "solve", "3")
    assert solved.returncode == 0, solved.output
    assert (folder / "test_step3.py").read_text() == committed(
        clone, "steps/step3/test_step3.py"
    ), f"solve must give the step its checks back:\n{solved.output}"
    assert (folder / "app.py").read_text() == (
        clone / "solutions/step3/app.py"
    ).read_text()
    assert "your checks kept" not in solved.stdout, solved.output
    assert "checks" in solved.stdout and "back" in solved.stdout, solved.output


def test_reset_and_solve_on_a_folder_that_already_matches_change_nothing(clone):
    untouched = make(clone, "reset", "5")
    assert untouched.returncode == 0 and "nothing to change" in untouched.stdout, (
        untouched.output
    )
    assert make(clone, "solve", "5").returncode == 0
    again = make(clone, "solve", "5")
    assert "nothing to change" in again.stdout, again.output
    assert len(backups(clone, 5)) == 1, "only the solve that changed something backs up"


def test_a_step_that_does_not_exist_gets_one_clear_line(clone):
    for target in ("reset", "solve", "hint", "diff", "watch", "check", "step", "demo"):
        for refused in (make(clone, target, "8"), workshop(clone, target, "8")):
            assert refused.returncode == 2, refused.output
            assert "there is no step '8'" in refused.stderr, refused.output
            assert "Traceback" not in refused.output, refused.output


# --- hints ------------------------------------------------------------------------------------------------------


def test_hint_gives_one_more_each_time_and_remembers(clone):
    count = len(
        tomllib.loads((clone / "workshop/hints.toml").read_text())["step3"]["hints"]
    )
    for shown in range(1, count + 1):
        hint = workshop(clone, "hint", "3")
        assert hint.returncode == 0, hint.output
        assert f"hint {shown} of {count} (new)" in hint.stdout, hint.output
        # Only the new hint: the ones before it were read already (--all shows them again).
        assert hint.stdout.count(f" of {count}") == 1, hint.output
    last = workshop(clone, "hint", "3")
    assert "every hint for step 3" in last.stdout and "(new)" not in last.stdout, (
        last.output
    )
    assert "hint 1 of" in workshop(clone, "hint", "4").stdout, (
        "each step counts its own hints"
    )
    assert f"hint 1 of {count} (new)" in make(clone, "hint", "3", "AGAIN=1").stdout
    second = make(clone, "hint", "3")
    assert "(hint 1 again, with this one: `make hint 3 ALL=1`)" in second.stdout, (
        second.output
    )
    every = workshop(clone, "hint", "3", "--all")
    assert every.stdout.count(f" of {count}") == min(3, count), every.output
    through_make = make(clone, "hint", "3", "ALL=1")
    assert through_make.stdout.count(f" of {count}") == min(4, count), (
        through_make.output
    )
    assert (clone / ".workshop-state/hints.json").is_file() and ignored_by_git(clone)


def guide_sections_of_the_checks(step, starter_dir) -> set[str]:
    checks = "".join(path.read_text() for path in starter_dir.glob("test_*.py"))
    return set(re.findall(r'guide\("([\w-]+\.md#[\w-]+)"\)', checks))


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.folder)
def test_every_step_has_three_or_four_hints_that_point_to_its_guide_sections(
    step, shipped_tree
):
    hints = tomllib.loads((ROOT / "workshop/hints.toml").read_text())[step.folder][
        "hints"
    ]
    assert 3 <= len(hints) <= 4, f"{step.label} has {len(hints)} hints"
    pointed = set(re.findall(r"Read: docs/([\w-]+\.md#[\w-]+)", "".join(hints)))
    assert pointed, f"no hint of {step.label} points to the guide"
    unknown = pointed - guide_sections_of_the_checks(
        step, shipped_tree.starter_dir(step)
    )
    assert not unknown, (
        f"hints of {step.label} point to sections none of its checks uses: {unknown}"
    )


# --- diff ---------------------------------------------------------------------------------------------------------


def test_diff_shows_what_is_left_then_nothing(clone):
    diff = workshop(clone, "diff", "6")
    assert diff.returncode == 0, diff.output
    assert (
        "--- steps/step6/app.py" in diff.stdout
        and "+++ solutions/step6/app.py" in diff.stdout
    ), diff.output
    assert '+@app.get("/users")' in diff.stdout and "-# TODO(step 6)" in diff.stdout, (
        diff.output
    )
    assert "test_step6" not in diff.stdout, (
        "the checks are the same on both sides: only app files are compared"
    )
    assert "\033[" not in diff.stdout, (
        "no colour codes when the output is not a terminal"
    )
    assert make(clone, "solve", "6").returncode == 0
    assert "steps/step6 matches solutions/step6" in workshop(clone, "diff", "6").stdout


def changed_lines(diff: str) -> list[str]:
    return [
        line
        for line in diff.splitlines()
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]


def test_diff_shows_the_same_changes_as_the_guide(clone):
    """Regression: `make diff` used difflib's autojunk, which on files of 200 lines or
    more shows other changes than the guide's "What changes" tab (187 lines against 179)."""
    around = [f"line {number}" for number in range(100)] + ["", ""]
    yours = [*around, "old 1", "", "", "old 2", *reversed(around)]
    finished = [*around, "new 1", "", "", "new 2", *reversed(around)]
    (clone / "steps/step1/app.py").write_text("\n".join(yours) + "\n")
    (clone / "solutions/step1/app.py").write_text("\n".join(finished) + "\n")
    shown = workshop(clone, "diff", "1")
    assert shown.returncode == 0, shown.output
    hook = load_hook()
    rows = hook.diff_rows(yours, finished)
    guide = [
        ("-" if kind == "del" else "+")
        + (yours[old - 1] if kind == "del" else finished[new - 1])
        for kind, old, new in rows
        if kind != "same"
    ]
    assert changed_lines(shown.stdout) == guide, (
        f"make diff:\n{shown.stdout}\nthe guide's What changes:\n{guide}"
    )


# --- doctor -------------------------------------------------------------------------------------------------------


def test_doctor_passes_on_this_machine(clone):
    doctor = make(clone, "doctor", f"PORT={free_port()}")
    assert doctor.returncode == 0, doctor.output
    assert "Ready for the workshop." in doctor.stdout and "FAIL" not in doctor.stdout, (
        doctor.output
    )
    assert "ok    Cello 1.4.1 (as pinned)" in doctor.stdout, doctor.output
    assert re.search(r"ok    Python 3\.1[2-9]", doctor.stdout), doctor.output


@pytest.fixture
def busy_port():
    """A port something listens on, for as long as the test runs."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


def test_doctor_fails_with_a_clear_line_when_the_chat_port_is_busy(clone, busy_port):
    doctor = workshop(clone, "doctor", "--port", str(busy_port))
    assert doctor.returncode != 0, doctor.output
    line = next(
        (
            line
            for line in doctor.stdout.splitlines()
            if line.strip().startswith("FAIL")
        ),
        "",
    )
    assert (
        f"port {busy_port} (the chat) is in use, held by pid {os.getpid()}" in line
    ), doctor.output
    assert "PORT=" in doctor.stdout and "block the workshop" in doctor.stdout, (
        doctor.output
    )


def test_doctor_only_warns_without_a_browser(clone):
    doctor = make(
        clone,
        "doctor",
        f"PORT={free_port()}",
        env={"CHROMIUM": str(clone / "no-such-browser")},
    )
    assert doctor.returncode == 0, doctor.output
    assert (
        "WARN  CHROMIUM=" in doctor.stdout
        and "the browser checks cannot run" in doctor.stdout
    ), doctor.output


def test_doctor_only_warns_when_the_guide_port_is_busy(clone, busy_port):
    doctor = workshop(
        clone, "doctor", "--port", str(free_port()), "--guide-port", str(busy_port)
    )
    assert doctor.returncode == 0, doctor.output
    assert f"WARN  port {busy_port} (the guide" in doctor.stdout, doctor.stdout


# --- watch --------------------------------------------------------------------------------------------------------


class Watcher:
    """`make watch N` in its own process group (as in a terminal), its output read line by line as it comes."""

    def __init__(self, clone: Path, number: int):
        environment = {
            key: value for key, value in os.environ.items() if key not in MAKE_VARIABLES
        }
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "watch", str(number)],
            cwd=clone,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**environment, "CHECK_WAIT_SECONDS": "1"},
        )
        self.lines: list[str] = []
        self._new = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self._new.put(line)
        self._new.put(None)

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._new.get(timeout=max(0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(
                    f"make watch never printed /{pattern}/:\n{''.join(self.lines)}"
                )
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def ctrl_c(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
        while (line := self._new.get(timeout=10)) is not None:
            self.lines.append(line)
        return self.process.returncode


def processes_running_in(folder: Path) -> dict[int, str]:
    """pid -> command line of live processes working in folder or naming it (make, watch, pytest, servers)."""
    found = {}
    for process in psutil.process_iter():
        try:
            command = " ".join(process.cmdline())
            directory = process.cwd()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # gone meanwhile, or not ours to look at
        if str(folder) in command or Path(directory).is_relative_to(folder):
            found[process.pid] = command
    return found


def wait_until(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def test_watch_reruns_the_checks_after_a_change_and_ctrl_c_stops_everything(clone):
    watcher = Watcher(clone, 3)
    try:
        first = watcher.wait_for(r"\[watch\] step 3: .*").group(0)
        assert re.match(r"\[watch\] step 3: 0 of \d+ checks pass\.$", first), "".join(
            watcher.lines
        )
        # messages.py first: a run that sees only the new app.py may come first, not last.
        for name in ("messages.py", "app.py"):
            shutil.copy(clone / "solutions/step3" / name, clone / "steps/step3" / name)
        watcher.wait_for(r"\[watch\] .* changed: .*app\.py.*; running the checks again")
        solved = watcher.wait_for(r"\[watch\] step 3: .*").group(0)
        assert re.match(
            r"\[watch\] step 3: (\d+) of \1 checks pass\. Step 3 is done!", solved
        ), "".join(watcher.lines)
        # Ctrl-C while the checks run (servers up): everything the watcher started must stop with it.
        (clone / "steps/step3/notes.txt").write_text("a new file is a change too\n")
        watcher.wait_for(r"changed: notes\.txt")
        step_folder = clone / "steps/step3"
        wait_until(
            lambda: any(
                "workshop.serve" in command
                for command in processes_running_in(step_folder).values()
            ),
            "the checks to start a server",
        )
    finally:
        exit_status = watcher.ctrl_c()
    output = "".join(watcher.lines)
    assert exit_status in (0, -signal.SIGINT), (
        f"make watch ended with {exit_status}:\n{output}"
    )
    assert (
        "[watch] Stopped watching steps/step3." in output and "Traceback" not in output
    ), output
    assert "KeyboardInterrupt" not in output, (
        f"Ctrl-C should stop it quietly:\n{output}"
    )
    left = processes_running_in(clone)
    for pid in left:  # this test's own leftovers: stop them, then fail
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after Ctrl-C: {left}"
