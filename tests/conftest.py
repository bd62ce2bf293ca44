"""Shared helpers for the repository's own checks.

The tests grade the workshop as shipped: a copy of this working tree whose steps/ comes from git
(workshop/shipped.py), never the learner's edited steps/. The header of `make test` says which
commit; WORKSHOP_STEPS=working tests the working copy's steps/ instead.
"""

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from workshop import launcher, shipped
from workshop.mistakes import check_command
from workshop.progress import junit_cases
from workshop.steps import ROOT, Step


def pytest_configure(config):
    config._shipped_tree = shipped.tree()
    config.shipped = config._shipped_tree.__enter__()


# Every starter's own checks, run in one pytest (tests/test_steps.py).
STARTERS = (
    "test_steps.py::test_starter_fails_every_one_of_its_own_checks_in_plain_words"
)


# make test's workers (pytest-xdist): each test goes to the next free one, but these
# files' (or tests') share a costly fixture (the gate's runs, every starter's, the
# guide's build, a clone, a Chromium), so each of these groups runs whole on one
# worker, made once.
ONE_WORKER = {
    "test_mistakes.py": "gate",
    STARTERS: "starters",
    "test_guide.py": "guide",
    "test_guide_browser.py": "guide",
    "test_tools.py": "tools",
    "test_end_to_end.py": "end-to-end",
    "test_cockpit.py": "cockpit",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's own `--dist loadgroup` (marks) loses its groups under pytest 9.2
    (pytest-xdist issue 1386): the same scheduling, its groups named here by file."""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            test = nodeid.rpartition("/")[2].partition("[")[0]  # file.py::name
            file = test.partition("::")[0]
            return ONE_WORKER.get(test, ONE_WORKER.get(file, nodeid))

    config.option.loadscopereorder = False  # in the order below, not by group size
    return ByGroup(config, log)


# The longest first, so that the short ones fill the gaps at the end: the gate, every
# starter's run, the tools', the guide's (minutes each), the cockpit's, then the step
# ladder's runs, the longest lineage first.
LONGEST_FIRST = ["test_mistakes.py", STARTERS, "test_tools.py", "test_guide.py"]
LONGEST_FIRST += ["test_guide_browser.py", "test_cockpit.py", "test_steps.py"]


def pytest_collection_modifyitems(config, items):
    items.sort(key=_length_rank)  # stable: the rest keeps its order


def _length_rank(item) -> tuple[int, int]:
    name = item.path.name
    if f"{name}::{item.originalname}" in LONGEST_FIRST:
        name = f"{name}::{item.originalname}"
    rank = LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    params = item.callspec.params if hasattr(item, "callspec") else {}
    step = params.get("step")
    runs_checks = isinstance(step, Step) and "checks" in item.name
    return rank, -len(step.lineage) if runs_checks else 0


def pytest_unconfigure(config):
    if hasattr(config, "_shipped_tree"):
        config._shipped_tree.__exit__(None, None, None)


def pytest_report_header(config):
    return config.shipped.description


@pytest.fixture(scope="session")
def shipped_tree(pytestconfig) -> shipped.Shipped:
    """The tree these tests grade: steps/ as shipped (see the module docstring)."""
    return pytestconfig.shipped


@dataclass
class CheckRun:
    """The outcome of running some step checks in a separate pytest, as a learner would."""

    exit_status: int
    output: str
    # test id -> ("passed" / "failed" / "error" / "skipped", its failure's report or "")
    cases: dict[str, tuple[str, str]]

    @property
    def outcomes(self) -> dict[str, str]:
        return {name: outcome for name, (outcome, _) in self.cases.items()}


def run_step_checks(
    check_dirs: list[Path],
    app_dir: Path | None,
    tmp_path: Path,
    env: dict | None = None,
    cwd: Path | None = None,
) -> CheckRun:
    """app_dir None: each check file grades the app in its own folder."""
    report = tmp_path / f"report-{len(list(tmp_path.iterdir()))}.xml"
    command = check_command([app_dir] if app_dir else [], check_dirs, report)
    # An app that keeps data (the login chapter's accounts and key) keeps it here, never
    # in the user's own data folder; the checks that need their own set CHAT_DATA.
    data = tmp_path / f"chat-data-{len(list(tmp_path.iterdir()))}"
    # Forked from a launcher that has imported pytest, where it can (workshop/launcher.py).
    status, output = launcher.run_captured(
        command,
        cwd or ROOT,
        # Options given to the outer pytest (PYTEST_ADDOPTS=-k ...) are not the checks'.
        {
            **{k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"},
            "CHAT_DATA": str(data),
            **(env or {}),
        },
        timeout=300,
    )
    cases = junit_cases(report) if report.exists() else {}
    return CheckRun(status, output, cases)


@pytest.fixture(scope="session")
def guide_site(tmp_path_factory, shipped_tree) -> Path:
    """The guide as shipped (its pages show the starters as handed out), built once with
    `mkdocs build --strict` for every test that reads it."""
    from test_guide import build_guide  # the one build the guide's own test runs

    site = tmp_path_factory.mktemp("guide-site")
    build_guide(shipped_tree.root, site)
    return site


@pytest.fixture
def run_checks(tmp_path, shipped_tree):
    """run_checks(check_dirs, app_dir, env) runs step checks in a pytest of their own, from
    the tree they belong to (a learner's clone, as shipped)."""
    return lambda check_dirs, app_dir, env=None: run_step_checks(
        check_dirs, app_dir, tmp_path, env, cwd=shipped_tree.root
    )


class Background:
    """A command run in its own process group, stopped with Ctrl-C (SIGINT) at the end of the test."""

    def __init__(
        self, command: list[str], env: dict | None = None, cwd: Path | None = None
    ):
        self.process = subprocess.Popen(
            command,
            cwd=cwd or ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def interrupt(self, timeout: float = 10) -> tuple[int, str]:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            output, _ = self.process.communicate()
            raise AssertionError(
                f"{self.process.args} did not stop within {timeout} s of Ctrl-C:\n{output}"
            ) from None
        return self.process.returncode, output


@pytest.fixture
def background():
    """background(command) starts a command; every one is stopped when the test ends."""
    started = []

    def start(command, env=None, cwd=None):
        started.append(Background(command, env, cwd))
        return started[-1]

    yield start
    for command in started:
        try:
            command.interrupt()
        except AssertionError:
            pass
