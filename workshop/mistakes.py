"""The typical mistakes gate: every wrong answer in tests/mistakes.toml must fail its step's checks.

Each mistake is a small change to a step's finished code (solutions/<folder>). The gate applies it to a
copy and runs the step's checks on that copy, exactly as a learner runs them (`pytest steps/<folder>
--app COPY`), then requires what a learner needs from a failure: the run fails, fast, in plain words,
and points to the guide section that explains the mistake. The catalogue's header says how to add one.

    python -m workshop.mistakes                    # every mistake, a line each; exit status 1 if one slips
    python -m workshop.mistakes --working-copy     # ... graded by this working copy's steps/ checks
    python -m workshop.mistakes step4 room         # only these steps' mistakes (or ids, or parts of ids)
    python -m workshop.mistakes --show ID          # the failure a learner sees for that mistake
    python -m workshop.mistakes --repeat 100 ID    # how often a race mistake is caught, out of 100 runs

`make test` runs it (tests/test_mistakes.py) with the checks as shipped (workshop/shipped.py).
"""

import argparse
import concurrent.futures
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from workshop import launcher, processes
from workshop.starters import app_files
from workshop.steps import ROOT, Step, step

CATALOGUE = ROOT / "tests" / "mistakes.toml"
ALTERNATIVES = ROOT / "tests" / "alternatives.toml"
# A learner's whole `pytest steps/stepN` on a wrong answer must end within this (issue 9), on
# a machine with a CPU to spare; see time_limit() for a busy one.
MISTAKE_SECONDS = 10.0
# On a busy machine only: a wrong answer's run 20.7 s against 20.5 allowed, moments after
# the finished code's, failed a gate whose every other verdict held.
BUSY_MARGIN = 1.25
# Past this the run counts as a hang, and is stopped.
HANG_SECONDS = 60.0
# How a failure reads (workshop/pytest_plugin.py writes it).
CHECK_LINE = re.compile(r"^Check: ", re.MULTILINE)
# What a failure must never show: a traceback, or pytest's own "E   ..." lines around one.
BARE_TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)|^E\s{3}", re.MULTILINE
)
FIELDS = {"id", "step", "did", "read", "says", "origin", "race", "change"}
ORIGINS = {"tutorial", "reported", "misread"}


class CatalogueError(Exception):
    """The catalogue itself is wrong: a missing field, an edit that no longer applies."""


@dataclass(frozen=True)
class Change:
    file: str
    find: str
    put: str


@dataclass(frozen=True)
class Mistake:
    id: str
    step: Step
    did: str
    read: str  # "step4.md#broadcast": the section a failure must link
    changes: tuple[Change, ...]
    # texts the failure must contain; a tuple: one of them (the words vary with timing)
    says: tuple[str | tuple[str, ...], ...] = ()
    origin: str = "misread"
    race: bool = False

    def files(self) -> dict[str, str]:
        """The app's files with the mistake made: relative name -> text."""
        solution = self.step.solution_dir
        files = {
            name: path.read_text(encoding="utf-8")
            for name, path in app_files(solution).items()
        }
        for number, change in enumerate(self.changes, 1):
            where = f"{self.id}, change {number} ({change.file})"
            if change.file not in files:
                raise CatalogueError(
                    f"{where}: solutions/{self.step.folder} has no {change.file}"
                )
            found = files[change.file].count(change.find)
            if found != 1:
                raise CatalogueError(
                    f"{where}: its `find` text occurs {found} times in "
                    f"solutions/{self.step.folder}/{change.file}, not once: update it "
                    f"to the finished code.\n--- find:\n{change.find}"
                )
            files[change.file] = files[change.file].replace(change.find, change.put)
        return files

    def write(self, folder: Path) -> Path:
        """The finished code with this mistake in it, in folder/<id>/."""
        target = folder / self.id
        if target.exists():
            shutil.rmtree(target)
        for name, text in self.files().items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(text, encoding="utf-8")
        return target


def load(path: Path = CATALOGUE) -> list[Mistake]:
    """Every mistake in the catalogue, checked for the fields it must have."""
    return _load(path, "mistake")


def load_alternatives(path: Path = ALTERNATIVES) -> list[Mistake]:
    """Every alternative right answer of tests/alternatives.toml: each must PASS its step's
    checks (its `how` is kept as `did`)."""
    return _load(path, "alternative")


def _load(path: Path, table: str) -> list[Mistake]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise CatalogueError(f"{path.name} is not valid TOML: {error}") from None
    required = {"id", "step", "change"} | (
        {"did", "read"} if table == "mistake" else {"how"}
    )
    allowed = FIELDS if table == "mistake" else {"id", "step", "how", "change"}
    entries, seen = [], set()
    for number, entry in enumerate(data.get(table, []), 1):
        name = entry.get("id", f"{table} number {number}")
        unknown, missing = set(entry) - allowed, required - set(entry)
        if unknown or missing:
            raise CatalogueError(
                f"{name}: unknown fields {sorted(unknown)}, missing {sorted(missing)}"
            )
        try:
            its_step = step(entry["step"])
        except ValueError as problem:
            raise CatalogueError(f"{name}: {problem}") from None
        if not name.startswith(its_step.folder + "-"):
            raise CatalogueError(f"{name}: an id starts with its step's folder")
        if name in seen:
            raise CatalogueError(f"{name}: two {table}s have this id")
        seen.add(name)
        read = entry.get("read", "")
        if table == "mistake" and not re.fullmatch(r"[a-z0-9-]+\.md#[a-z0-9-]+", read):
            raise CatalogueError(f"{name}: read is a guide section, PAGE.md#ANCHOR")
        if entry.get("origin", "misread") not in ORIGINS:
            raise CatalogueError(f"{name}: origin is one of {sorted(ORIGINS)}")
        changes = tuple(
            Change(change["file"], change["find"], change.get("put", ""))
            for change in entry["change"]
        )
        entries.append(
            Mistake(
                id=name,
                step=its_step,
                did=" ".join(entry.get("did", entry.get("how", "")).split()),
                read=read,
                changes=changes,
                says=tuple(
                    tuple(s) if isinstance(s, list) else s
                    for s in entry.get("says", ())
                ),
                origin=entry.get("origin", "misread"),
                race=bool(entry.get("race", False)),
            )
        )
    return entries


@dataclass
class Run:
    """The step's checks run on one mistake: what a learner would see."""

    mistake: Mistake
    exit_status: int | None  # 1: some check failed; None: stopped as a hang
    seconds: float  # the learner's whole `pytest steps/<folder>` on it
    failures: list[str] = field(default_factory=list)  # each failed check's report
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    limit: float = MISTAKE_SECONDS

    @property
    def caught(self) -> bool:
        """The checks failed, fast, in plain words, pointing to the right section."""
        return not self.problems

    @property
    def output(self) -> str:
        return "\n\n".join(self.failures)


def check_command(apps: list[Path], checks: list[Path], report: Path) -> list[str]:
    """A learner's `pytest steps/X` on each app in turn (`--app` as one argument: pytest
    takes a lone path for a test path), with a JUnit report."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        *(f"--app={app}" for app in apps),
        *map(str, checks),
    ]


def run_batch(
    mistakes: list[Mistake], checks: Path, workdir: Path, env: dict | None = None
) -> list[Run]:
    """Run one step's checks on several of its mistakes in one pytest (`--app A --app B`):
    each mistake's checks run as in a learner's run, one app after the other, and its time
    is the sum of its checks' times plus STARTUP_SECONDS. Quicker than a pytest each:
    Python, pytest and Chromium start once."""
    folder = mistakes[0].step.folder
    apps = [workdir / mistake.id for mistake in mistakes]  # run_all wrote them
    report = workdir / f"report-{folder}-{next(_reports)}.xml"
    environment = {**os.environ, **(env or {})}
    for inherited in ("CHECK_WAIT_SECONDS", "CHECK_GIVE_UP_SECONDS", "PYTEST_ADDOPTS"):
        environment.pop(inherited, None)  # the learner's defaults, not a test run's
    limit = HANG_SECONDS + 20 * len(mistakes)
    process = launcher.popen_captured(
        check_command(apps, [checks / folder], report),
        checks.parent,  # the tree the checks come from: a learner's clone
        environment,
    )
    _running.add(process)
    try:
        output, _ = process.communicate(timeout=limit)
        status = process.wait()
    except subprocess.TimeoutExpired:
        output, status = processes.stop_and_read(process), None
    finally:
        _running.discard(process)
    runs = [Run(m, status, STARTUP_SECONDS) for m in mistakes]
    cases = ElementTree.parse(report).iter("testcase") if report.exists() else []
    seen = set()
    for case in cases:
        found = re.search(r"\[(?:.*-)?app(\d+)(?:-.*)?\]$", case.get("name", ""))
        if not found and len(runs) > 1:
            continue
        number = int(found[1]) if found else 0  # one app: no app ids in the names
        result = runs[number]
        seen.add(number)
        result.seconds += float(case.get("time", 0))
        for child in case:
            if child.tag in ("failure", "error"):
                result.failures.append(child.text or child.get("message") or "")
            elif child.tag == "skipped":
                result.skipped += 1
    for number, result in enumerate(runs):
        if status in (0, 1):
            result.exit_status = 1 if result.failures else 0
        if status not in (0, 1) or number not in seen:
            result.failures.append(output[-3000:])
        result.problems = judge(result)
    return runs


_reports = itertools.count()
# The batches' pytest runs going on now.
_running: set[subprocess.Popen | launcher.Captured] = set()


def _interrupt_running(grace: float = 10.0) -> None:
    """SIGTERM to every batch running (their threads collect what they print), and
    SIGKILL to those still running after `grace` seconds."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        for process in list(_running):
            try:
                os.killpg(process.pid, signal_number)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while _running and time.monotonic() < deadline:
            time.sleep(0.1)


STARTUP_SECONDS = 1.0  # Python and pytest starting, which a batch does only once


def judge(result: Run) -> list[str]:
    """What keeps this run from being a failure a learner can act on; empty if none."""
    mistake, output = result.mistake, result.output
    if result.exit_status is None:
        return ["the checks hung: they were stopped"]
    if result.exit_status == 0:
        return ["the checks PASSED: nothing catches this mistake"]
    if result.exit_status != 1:
        return [f"pytest ended with exit status {result.exit_status}, not 1 (failed)"]
    problems = []
    if result.seconds > result.limit:
        problems.append(
            f"the checks took {result.seconds:.1f} s to fail: at most {result.limit:.3g}"
            + (
                " (stretched: the finished code ran slow here too)"
                if result.limit > MISTAKE_SECONDS
                else ""
            )
        )
    plain = sum(text.startswith("Check: ") for text in result.failures)
    if plain < len(result.failures):
        problems.append(
            f"{len(result.failures) - plain} of {len(result.failures)} failures do not "
            "start with 'Check: '"
        )
    if BARE_TRACEBACK.search(output):
        problems.append("a failure shows a traceback instead of plain words")
    if f"Read: docs/{mistake.read} " not in output:
        read = sorted(set(re.findall(r"^Read: docs/(\S+)", output, re.MULTILINE)))
        problems.append(
            f"no failure links {mistake.read}; they link: {', '.join(read) or 'nothing'}"
        )
    for text in mistake.says:
        options = text if isinstance(text, tuple) else (text,)
        if not any(option in output for option in options):
            problems.append(f"the failures never say {' or '.join(map(repr, options))}")
    return problems


# What a correct solution's whole run may take on a quiet machine (issue 9): with a browser
# check (a *_page.py file), more.
SOLUTION_SECONDS, BROWSER_SOLUTION_SECONDS = 3.0, 5.0


def reference(the_step: Step) -> Mistake:
    """The finished code itself, run in the same batch as the mistakes: its time tells how
    much this machine slows the checks down just now."""
    return Mistake(
        f"{the_step.folder}-as-finished", the_step, "the finished code", "", ()
    )


def time_limit(solution_seconds: float, checks: Path) -> float:
    """MISTAKE_SECONDS, on a machine where the finished code's own run keeps within its budget;
    stretched in proportion where this machine (busy, or running the gate's batches side by
    side) makes the finished code itself slower, with a margin there (BUSY_MARGIN): the two
    runs are moments apart, and a busy machine's load comes and goes between them.
    MISTAKE_SECONDS=... in the environment sets it."""
    if "MISTAKE_SECONDS" in os.environ:
        return float(os.environ["MISTAKE_SECONDS"])
    has_browser = any(checks.glob("test_*_page.py"))
    budget = BROWSER_SOLUTION_SECONDS if has_browser else SOLUTION_SECONDS
    slowdown = solution_seconds / budget
    return MISTAKE_SECONDS * (slowdown * BUSY_MARGIN if slowdown > 1 else 1.0)


def run_all(
    mistakes: list[Mistake],
    checks: Path,
    jobs: int = 3,
    per_batch: int = 8,
    env: dict | None = None,
    report=None,
    finished: dict[str, Run] | None = None,
) -> list[Run]:
    """Run the checks on every mistake: a pytest per step (per `per_batch` of its
    mistakes, the first one with the finished code too), `jobs` of them at a time;
    `report(run)` hears of each mistake once all are judged, and `finished`, if given,
    gets the finished code's run of each step (by key)."""
    batches = []
    for key in dict.fromkeys(m.step.key for m in mistakes):
        of_step = [m for m in mistakes if m.step.key == key]
        of_step.insert(0, reference(of_step[0].step))
        batches += [
            of_step[n : n + per_batch] for n in range(0, len(of_step), per_batch)
        ]
    # The slowest first (browser steps, big rooms), so that the pool ends together.
    batches.sort(key=lambda batch: -len(batch) * _weight(batch[0].step.key))
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="mistakes-") as workdir:
        for mistake in {m.id: m for m in mistakes}.values():
            mistake.write(Path(workdir))
        for batch in batches:
            if batch[0].changes == ():
                batch[0].write(Path(workdir))
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
        try:
            futures = [
                pool.submit(run_batch, batch, checks, Path(workdir), env)
                for batch in batches
            ]
            for future in concurrent.futures.as_completed(futures):
                runs += future.result()
        except BaseException:  # Ctrl-C too: no batch starts, the running ones stop
            pool.shutdown(wait=False, cancel_futures=True)
            _interrupt_running()
            raise
        finally:
            pool.shutdown(wait=True)
    references = {r.mistake.step.key: r for r in runs if r.mistake.changes == ()}
    if finished is not None:
        finished.update(references)
    judged = []
    for result in runs:
        if result.mistake.changes == ():
            continue
        solution = references[result.mistake.step.key]
        result.limit = time_limit(solution.seconds, checks / result.mistake.step.folder)
        result.problems = judge(result)
        if solution.failures:
            result.problems.append(
                "the finished code itself fails the checks in this run:\n"
                + solution.output[-1500:]
            )
        judged.append(result)
        if report:
            report(result)
    order = {id(m): n for n, m in enumerate(mistakes)}
    return sorted(judged, key=lambda r: order.get(id(r.mistake), 0))


def _weight(key: str) -> int:
    return {"5": 3, "7": 3, "room": 3, "guard": 3}.get(key, 1)


def selected(mistakes: list[Mistake], wanted: list[str]) -> list[Mistake]:
    """The mistakes of the steps named (4, step4, room), or whose id contains a word given."""
    if not wanted:
        return mistakes
    chosen = []
    for mistake in mistakes:
        for word in wanted:
            try:
                if step(word) == mistake.step:
                    chosen.append(mistake)
                    break
            except ValueError:
                pass
            if word in mistake.id:
                chosen.append(mistake)
                break
    return chosen


def line(result: Run) -> str:
    verdict = "caught" if result.caught else "SLIPS "
    return f"{verdict} {result.seconds:5.1f} s  {result.mistake.id}" + "".join(
        f"\n         - {problem}" for problem in result.problems
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "wanted", nargs="*", help="steps (4, room) or ids, or parts of ids"
    )
    parser.add_argument("--jobs", type=int, default=3, help="pytest runs at once (3)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each mistake this many times and count how often it is caught",
    )
    parser.add_argument(
        "--show", action="store_true", help="print each run's whole output"
    )
    parser.add_argument(
        "--working-copy",
        action="store_true",
        help="the checks of this working copy's steps/, not the shipped ones",
    )
    args = parser.parse_args(argv)
    from workshop import shipped

    try:
        mistakes = selected(load(), args.wanted)
        for mistake in mistakes:
            mistake.files()  # every edit still applies
    except CatalogueError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not mistakes:
        print(f"error: no mistake matches {' '.join(args.wanted)}", file=sys.stderr)
        return 2
    with shipped.tree(working_copy=args.working_copy or None) as checks:
        print(checks.description)
        checks_dir = checks.steps_dir

        def report(result: Run) -> None:
            if args.repeat == 1:
                print(line(result), flush=True)
                if args.show:
                    print(result.output)

        runs = run_all(mistakes * args.repeat, checks_dir, args.jobs, report=report)
    if args.repeat > 1:
        for mistake in mistakes:
            mine = [r for r in runs if r.mistake is mistake]
            caught = sum(r.caught for r in mine)
            slowest = max(r.seconds for r in mine)
            print(
                f"{mistake.id}: caught {caught} of {len(mine)} runs "
                f"(slowest {slowest:.1f} s)"
            )
            for seen in sorted({p for r in mine for p in r.problems}):
                print(f"    - {seen}")
    slipped = [r for r in runs if not r.caught]
    print(f"{len(runs) - len(slipped)} of {len(runs)} runs caught their mistake.")
    return 1 if slipped else 0


if __name__ == "__main__":
    sys.exit(main())
