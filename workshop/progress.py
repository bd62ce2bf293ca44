"""How far the learner is: every step's checks, run at once, as one table.  `make progress`

    python -m workshop.progress            # the table, and the next step to do
    python -m workshop.progress --fresh    # rerun even the steps that passed and have not changed since

Fast enough to run after every edit:
- Each step's checks run in their own pytest against the learner's steps/stepN, all seven at the same time:
  most of a check's time is spent waiting for a server, not computing.
- A failing check usually fails by waiting in vain for a message, so these runs wait a short time
  (PROGRESS_WAIT_SECONDS) for each event; `make check N` grades one step with the patient default. A step
  with browser checks keeps the default wait (a browser on a busy laptop needs it); those checks run
  only once the step's other checks pass (workshop/pytest_plugin.py).
- A step that passed is not rerun while nothing it depends on has changed (its folder, the workshop's
  code, the pins, the Python): its result is kept in .workshop-state/progress.json.
- A step still exactly as handed out (git says so) is not run either: every starter fails every one
  of its own checks (tests/test_steps.py proves it), so its row is known; only its checks are
  counted, all steps in one `pytest --collect-only`. `--fresh` runs them too.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from workshop import processes, share
from workshop.restore import RestoreError, pristine_commit
from workshop.share import SHARE_LATER
from workshop.shipped import edited_files
from workshop.starters import folder_files
from workshop.steps import NUMBERED, ROOT, STEPS, Step

# Long enough for a passing check on a busy two-core laptop running all seven steps at once; short enough
# that the untouched starters' failing waits stay quick. A CHECK_WAIT_SECONDS the learner set wins.
PROGRESS_WAIT_SECONDS = os.environ.get("CHECK_WAIT_SECONDS", "1")
STATE_FILE = ROOT / ".workshop-state" / "progress.json"
# A step's checks that take longer than this hang (the slowest step takes about 20 s on a busy laptop):
# the table must still appear, with that step marked.
STEP_TIMEOUT_SECONDS = float(os.environ.get("PROGRESS_STEP_TIMEOUT_SECONDS", "120"))
# Counting the untouched starters' checks takes a second or two; a busy machine, more.
COUNT_TIMEOUT_SECONDS = 60
# What every step's checks run on besides their own folder: a change here can change any row.
WORKSHOP_CODE = ("workshop", "conftest.py", "pytest.ini", "requirements.txt")
PYTEST = (sys.executable, "-m", "pytest", "-p", "no:cacheprovider")
# Set in the environment of each run of the checks, and so inherited by every server the checks start.
RUN_MARKER = "WORKSHOP_CHECKS_RUN"


@dataclass
class CheckResults:
    """The outcome of one step's checks."""

    step: Step
    passed: int = 0
    total: int = 0
    failed: list[str] = field(default_factory=list)  # names of the checks that failed
    skipped: int = 0  # browser checks not run yet, or not runnable here (no Chromium)
    problem: str = ""  # set when pytest could not run the checks at all
    from_earlier_run: bool = False  # passed before, and nothing has changed since
    # An untouched starter: counted, not run (see the docstring).
    as_handed_out: bool = False
    # Each check's outcome by name, for make share (workshop/share.py).
    outcomes: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return not self.problem and not self.failed and self.passed > 0


def checks_environment(wait_seconds: str | None = None) -> dict:
    environment = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
    }  # leave no __pycache__ in the learner's folders
    if wait_seconds is not None:
        environment["CHECK_WAIT_SECONDS"] = wait_seconds
    return environment


def pytest_command(step: Step, report: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        *PYTEST,
        f"--junitxml={report}",
        *extra,
        str(step.starter_dir.relative_to(ROOT)),
    ]


def has_browser_checks(step: Step) -> bool:
    return any(
        "workshop.browser" in checks.read_text()
        for checks in step.starter_dir.glob("test_*.py")
    )


def junit_outcomes(report: Path) -> dict[str, str]:
    """Test id ("module.Class::name") -> "passed", "failed", "error" or "skipped", from
    the JUnit XML report pytest writes with --junitxml."""
    return {name: outcome for name, (outcome, _) in junit_cases(report).items()}


def junit_cases(report: Path) -> dict[str, tuple[str, str]]:
    """Test id -> (outcome, as in junit_outcomes; the report of its failure, error or
    skip, empty if it passed)."""
    cases = {}
    for case in ElementTree.parse(report).iter("testcase"):
        found = next(
            (c for kind in ("failure", "error", "skipped") for c in case.iter(kind)),
            None,
        )
        outcome = "passed" if found is None else found.tag
        text = "" if found is None else found.text or found.get("message") or ""
        name = f"{case.get('classname')}::{case.get('name')}"
        cases[name] = ({"failure": "failed"}.get(outcome, outcome), text)
    return cases


def read_report(
    step: Step, report: Path, exit_status: int, output: str
) -> CheckResults:
    """CheckResults from pytest's JUnit XML report (exit status 1 only means some check failed)."""
    results = CheckResults(step)
    if not report.is_file() or exit_status not in (0, 1):
        last_line = (
            output.strip().splitlines()[-1]
            if output.strip()
            else f"exit status {exit_status}"
        )
        results.problem = f"the checks could not run ({last_line})"
        return results
    for name, outcome in junit_outcomes(report).items():
        results.total += 1
        check = name.rpartition("::")[2]
        if outcome in ("failed", "error"):
            results.failed.append(check)
            results.outcomes[check] = "failed"
        elif outcome == "skipped":
            results.skipped += 1
            results.outcomes.setdefault(check, "skipped")
        else:
            results.passed += 1
            results.outcomes.setdefault(check, "passed")
    return results


def processes_of_run(run_id: str) -> list[psutil.Process]:
    """Live processes that inherited this run's RUN_MARKER: the checks and the servers they started."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(RUN_MARKER) == run_id:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # gone meanwhile, or another user's
    return found


def stop_checks(checks: subprocess.Popen, run_id: str) -> None:
    """Ctrl-C for a run of the checks, which then stop the servers they started; their output is dropped."""
    processes.stop(checks, grace=15)
    stop_leftovers(run_id)


def stop_leftovers(run_id: str) -> None:
    """Stop what a run of the checks left behind. A Ctrl-C that lands while a check is still starting its
    server leaves that server running (the fixture that would stop it never finished)."""
    processes.stop_all(processes_of_run(run_id))


def run_id_of(step: Step) -> str:
    return f"progress-{os.getpid()}-{step.folder}"


def run_checks(step: Step) -> CheckResults:
    """Run step's checks quietly and count what passed."""
    wait_seconds = None if has_browser_checks(step) else PROGRESS_WAIT_SECONDS
    run_id = run_id_of(step)
    with tempfile.TemporaryDirectory(prefix="workshop-progress-") as scratch:
        report = Path(scratch) / "report.xml"
        checks = subprocess.Popen(
            pytest_command(step, report, ("-q",)),
            cwd=ROOT,
            text=True,
            # make share: this table is reported once, below (share.SHARE_LATER).
            env={
                **checks_environment(wait_seconds),
                RUN_MARKER: run_id,
                SHARE_LATER: "1",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            output, _ = checks.communicate(timeout=STEP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            stop_checks(checks, run_id)
            return CheckResults(
                step,
                problem=(
                    f"the checks did not finish within {STEP_TIMEOUT_SECONDS:g} s; `make check {step.key}` shows which hangs"
                ),
            )
        return read_report(step, report, checks.returncode, output)


# --- results kept from earlier runs -------------------------------------------------------------------------------


def fingerprint(step: Step) -> str:
    """Changes whenever anything the step's checks depend on changes."""
    digest = hashlib.sha256(sys.version.encode())
    inputs = list(folder_files(step.starter_dir).values())
    for name in WORKSHOP_CODE:
        path = ROOT / name
        inputs += folder_files(path).values() if path.is_dir() else [path]
    for path in sorted(inputs):
        if path.is_file():
            digest.update(
                path.relative_to(ROOT).as_posix().encode()
                + b"\0"
                + path.read_bytes()
                + b"\0"
            )
    return digest.hexdigest()


def kept_passes() -> dict:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}


def keep_passes(results: list[CheckResults], fingerprints: dict[str, str]) -> None:
    kept = {
        result.step.key: {
            "fingerprint": fingerprints[result.step.key],
            "passed": result.passed,
            "total": result.total,
            "skipped": result.skipped,
        }
        for result in results
        if result.done
    }
    STATE_FILE.parent.mkdir(exist_ok=True)
    # Written whole and renamed into place: a second `make progress` running meanwhile never reads half a file.
    partial = STATE_FILE.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
    os.replace(partial, STATE_FILE)


def untouched_starters() -> list[Step]:
    """The steps whose folder is the starter as handed out (git's pristine commit), while
    the workshop's own code is too; none where git cannot tell."""
    try:
        commit, _ = pristine_commit()
        edited = edited_files(commit, "steps/", *WORKSHOP_CODE)
    except (RestoreError, subprocess.CalledProcessError, OSError):
        return []
    if any(not name.startswith("steps/") for name in edited):
        return []
    return [
        step
        for step in STEPS
        if step.starter_dir.is_dir()
        and not any(name.startswith(f"steps/{step.folder}/") for name in edited)
    ]


def counted_not_run(steps: list[Step]) -> dict[str, CheckResults]:
    """Each untouched starter's row without running its checks: all of them, counted in
    one `pytest --collect-only`, fail. A step whose checks cannot be collected is left out
    (it runs, and its row says what went wrong)."""
    if not steps:
        return {}
    try:
        listed = subprocess.run(
            [
                *(*PYTEST, "-q", "--collect-only"),
                *(str(step.starter_dir.relative_to(ROOT)) for step in steps),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=checks_environment(),
            timeout=COUNT_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return {}  # then they run, each with its own deadline
    if listed.returncode != 0:
        return {}
    results = {}
    for step in steps:
        prefix = f"{step.starter_dir.relative_to(ROOT).as_posix()}/"
        checks = [
            line.rpartition("::")[2]
            for line in listed.stdout.splitlines()
            if line.startswith(prefix) and "::" in line
        ]
        if checks:
            results[step.key] = CheckResults(
                step,
                total=len(checks),
                failed=checks,
                outcomes=dict.fromkeys(checks, "failed"),
                as_handed_out=True,
            )
    return results


def step_results(step: Step, fingerprints: dict[str, str], kept: dict) -> CheckResults:
    earlier = kept.get(step.key)
    if earlier and earlier["fingerprint"] == fingerprints[step.key]:
        return CheckResults(
            step,
            earlier["passed"],
            earlier["total"],
            skipped=earlier["skipped"],
            from_earlier_run=True,
        )
    return run_checks(step)


# --- the report -----------------------------------------------------------------------------------------------------


def table(results: list[CheckResults]) -> str:
    title_width = max(len(result.step.title) for result in results)
    key_width = max(5, *(len(result.step.key) for result in results))
    lines = [f"  {'step':>{key_width}}  {'':{title_width}}  checks passing  status", ""]
    for result in results:
        previous = result.step.previous
        if result.step.is_chapter and previous and not previous.is_chapter:
            lines.append(
                f"  {'':>{key_width}}  Beyond the tutorial: chapters (make step NAME)"
            )
        counted = f"{result.passed} of {result.total}" if not result.problem else "-"
        status = "passed" if result.done else "not yet"
        if result.done and result.skipped:
            status += (
                f" ({result.skipped} skipped: make check {result.step.key} says why)"
            )
        if result.problem:
            status += f": {result.problem}"
        key, title = result.step.key, result.step.title
        lines.append(
            f"  {key:>{key_width}}  {title:{title_width}}  {counted:>14}  {status}"
        )
    return "\n".join(lines)


def next_step_advice(results: list[CheckResults]) -> str:
    todo = [result for result in results if not result.done]
    if not todo:
        return (
            "Every step and chapter passes: `make step room` runs your chat. Well done!"
        )
    if not any(not result.done for result in results if not result.step.is_chapter):
        chapters = ", ".join(result.step.key for result in todo)
        last = NUMBERED[-1].key
        done = (
            f"All {len(NUMBERED)} steps pass: your chat runs with `make step {last}`."
        )
        return (
            f"{done} Beyond the tutorial, the chapters: {chapters} (make check NAME)."
        )
    step = todo[0].step
    return (
        f"Next: {step.label}, {step.title}. Follow the TODO({step.todo_tag}) blocks in "
        f"steps/{step.folder}/.\n"
        f"  make check {step.key}   why each check fails (and the guide section that explains it)\n"
        f"  make hint {step.key}    a hint, one more each time"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="rerun every step, even those unchanged since passing",
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    fingerprints = {step.key: fingerprint(step) for step in STEPS}
    kept = {} if args.fresh else kept_passes()
    known = {} if args.fresh else counted_not_run(untouched_starters())
    try:
        with ThreadPoolExecutor(max_workers=len(STEPS)) as pool:
            results = list(
                pool.map(
                    lambda step: (
                        known.get(step.key) or step_results(step, fingerprints, kept)
                    ),
                    STEPS,
                )
            )
    except KeyboardInterrupt:
        # The checks had the Ctrl-C too (same terminal), and the pool has waited for them to stop.
        for step in STEPS:
            stop_leftovers(run_id_of(step))
        print("\nStopped: no table this time.")
        return 130
    keep_passes(results, fingerprints)
    seconds = time.monotonic() - started

    print(table(results))
    print()
    print(next_step_advice(results))
    ran = [r.step.key for r in results if not (r.as_handed_out or r.from_earlier_run)]
    print()
    if ran:
        print(
            f"(checked step {', '.join(ran)} in {seconds:.1f} s, waiting at most "
            f"{PROGRESS_WAIT_SECONDS} s for each event; `make check N` waits longer)"
        )
    shared = share.send(share.outcomes_of_progress(results))
    if shared:
        print(shared)
    untouched = [result.step.key for result in results if result.as_handed_out]
    if untouched:
        print(
            f"(not run: step {', '.join(untouched)}, as handed out, so every check fails "
            "until you start; `make check N` runs one)"
        )
    unchanged = [result.step.key for result in results if result.from_earlier_run]
    if unchanged:
        print(
            f"(not rerun: step {', '.join(unchanged)}, unchanged since passing; `make progress FRESH=1` reruns all)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
