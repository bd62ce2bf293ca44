"""After `make check N`, `pytest steps/stepN` or each run of `make watch N`: when the learner
opted in (`make share`), send the instructor's dashboard which checks passed (workshop/share.py).

Loaded by the root conftest.py, beside workshop/pytest_plugin.py and separate from it. It reports
only a learner's own steps/ run as a learner runs them: not the repository's tests, not a run
against another folder (--app), and not the runs of `make progress`, which reports all steps in
one go. It never changes a check's outcome or the exit status, and waits at most
share.SEND_SECONDS for the instructor's machine.
"""

import os
from pathlib import Path

from workshop import share
from workshop.steps import ROOT, STEPS

FOLDERS = {course_step.folder: course_step for course_step in STEPS}


def _wanted(config) -> bool:
    return (
        share.SETTINGS_FILE.exists()
        and not os.environ.get(share.SHARE_LATER)
        and not config.getoption("--app", default=None)
        and not config.getoption("collectonly", default=False)
    )


def pytest_configure(config):
    if _wanted(config):
        config.pluginmanager.register(Reporter(config), "workshop-share-reporter")


class Reporter:
    def __init__(self, config):
        self.config = config
        self.items: dict[str, list[str]] = {}  # step key -> the node ids collected
        self.outcomes: dict[str, dict[str, str]] = {}  # step key -> check -> outcome
        self.partial = bool(
            config.getoption("keyword", default="")
            or config.getoption("markexpr", default="")
        )

    @staticmethod
    def _step_and_check(nodeid: str) -> tuple[str, str] | None:
        path, _, name = nodeid.partition("::")
        parts = Path(path).parts
        if len(parts) < 3 or parts[0] != "steps" or parts[1] not in FOLDERS:
            return None
        return FOLDERS[parts[1]].key, name

    def pytest_deselected(self, items):
        if items:
            self.partial = True

    def pytest_collection_finish(self, session):
        files: dict[str, set[str]] = {}
        for item in session.items:
            found = self._step_and_check(item.nodeid)
            if found:
                self.items.setdefault(found[0], []).append(item.nodeid)
                files.setdefault(found[0], set()).add(item.nodeid.partition("::")[0])
        for key, collected in files.items():
            folder = ROOT / "steps" / FOLDERS_BY_KEY[key].folder
            every_file = {
                path.relative_to(ROOT).as_posix() for path in folder.glob("test_*.py")
            }
            if collected != every_file:
                self.partial = True

    def pytest_runtest_logreport(self, report):
        found = self._step_and_check(report.nodeid)
        if found is None:
            return
        key, name = found
        if report.when == "call" or report.outcome != "passed":
            if report.when == "teardown" and report.outcome == "passed":
                return
            outcome = "skipped" if report.skipped else report.outcome
            checks = self.outcomes.setdefault(key, {})
            # A failing teardown after a passing call still fails the check.
            if checks.get(name) != "failed":
                checks[name] = outcome

    def pytest_terminal_summary(self, terminalreporter):
        steps = []
        for key in sorted(self.outcomes, key=list(FOLDERS_BY_KEY).index):
            ran = self.outcomes[key]
            complete = not self.partial and len(ran) == len(self.items.get(key, []))
            steps.append(
                {"step": key, "checks": share.combine(ran), "complete": complete}
            )
        line = share.send(steps)
        if line:
            terminalreporter.write_line(line)


FOLDERS_BY_KEY = {course_step.key: course_step for course_step in STEPS}
