"""How far the learner is: every step's checks, run at once, as one table.  `make progress`

Each step's checks run in their own pytest against the learner's steps/stepN, all seven at the same time:
most of a check's time is spent waiting for a server, not computing, so two cores run them side by side.
A check that fails usually fails by waiting in vain for a message, so the runs here wait a short time
(PROGRESS_WAIT_SECONDS) for each event; `make check N` grades one step with the patient default.
"""

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from workshop.steps import ROOT, STEPS, Step

# Long enough for a passing check on a busy two-core laptop running all seven steps at once; short enough
# that the untouched starters' failing waits stay quick. A CHECK_WAIT_SECONDS the learner set wins.
PROGRESS_WAIT_SECONDS = os.environ.get("CHECK_WAIT_SECONDS", "1")


@dataclass
class CheckResults:
    """The outcome of one step's checks."""

    step: Step
    passed: int = 0
    total: int = 0
    failed: list[str] = field(default_factory=list)  # names of the checks that did not pass
    problem: str = ""  # set when pytest could not run the checks at all

    @property
    def done(self) -> bool:
        return not self.problem and self.total > 0 and self.passed == self.total


def checks_environment(wait_seconds: str | None = None) -> dict:
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # leave no __pycache__ in the learner's folders
    if wait_seconds is not None:
        environment["CHECK_WAIT_SECONDS"] = wait_seconds
    return environment


def pytest_command(step: Step, report: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}",
        *extra, str(step.starter_dir.relative_to(ROOT)),
    ]


def read_report(step: Step, report: Path, exit_status: int, output: str) -> CheckResults:
    """CheckResults from pytest's JUnit XML report (exit status 1 only means some check failed)."""
    results = CheckResults(step)
    if not report.is_file() or exit_status not in (0, 1):
        last_line = output.strip().splitlines()[-1] if output.strip() else f"exit status {exit_status}"
        results.problem = f"the checks could not run ({last_line})"
        return results
    for case in ElementTree.parse(report).iter("testcase"):
        results.total += 1
        if any(child.tag in ("failure", "error", "skipped") for child in case):
            results.failed.append(case.get("name"))
        else:
            results.passed += 1
    return results


def run_checks(step: Step, wait_seconds: str | None = PROGRESS_WAIT_SECONDS) -> CheckResults:
    """Run step's checks quietly and count what passed."""
    with tempfile.TemporaryDirectory(prefix="workshop-progress-") as scratch:
        report = Path(scratch) / "report.xml"
        finished = subprocess.run(
            pytest_command(step, report, ("-q",)), cwd=ROOT, env=checks_environment(wait_seconds),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        return read_report(step, report, finished.returncode, finished.stdout)


def table(results: list[CheckResults]) -> str:
    title_width = max(len(result.step.title) for result in results)
    lines = [f"  step  {'':{title_width}}  checks passing  status", ""]
    for result in results:
        counted = f"{result.passed} of {result.total}" if not result.problem else "-"
        status = "passed" if result.done else "not yet"
        if result.problem:
            status += f": {result.problem}"
        lines.append(f"  {result.step.number:>4}  {result.step.title:{title_width}}  {counted:>14}  {status}")
    return "\n".join(lines)


def next_step_advice(results: list[CheckResults]) -> str:
    todo = [result for result in results if not result.done]
    if not todo:
        return "All seven steps pass: the finished chat runs with `make step 7`. Well done!"
    step = todo[0].step
    return (
        f"Next: step {step.number}, {step.title}. Follow the TODO(step {step.number}) blocks in "
        f"steps/step{step.number}/.\n"
        f"  make check {step.number}   why each check fails (and the guide section that explains it)\n"
        f"  make hint {step.number}    a hint, one more each time"
    )


def main() -> int:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(STEPS)) as pool:
        results = list(pool.map(run_checks, STEPS))
    seconds = time.monotonic() - started
    print(table(results))
    print()
    print(next_step_advice(results))
    print(f"\n(checked in {seconds:.1f} s, waiting at most {PROGRESS_WAIT_SECONDS} s for each event; "
          "`make check N` waits longer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
