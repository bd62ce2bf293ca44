"""Shared helpers for the repository's own checks.

The tests grade the workshop as shipped: a copy of this working tree whose steps/ comes from git
(workshop/shipped.py), never the learner's edited steps/. The header of `make test` says which
commit; WORKSHOP_STEPS=working tests the working copy's steps/ instead.
"""

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import pytest

from workshop import shipped
from workshop.steps import ROOT


def pytest_configure(config):
    config._shipped_tree = shipped.tree()
    config.shipped = config._shipped_tree.__enter__()


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
    outcomes: dict[str, str]  # test id -> "passed" / "failed" / "error" / "skipped"


def run_step_checks(
    check_dirs: list[Path],
    app_dir: Path,
    tmp_path: Path,
    env: dict | None = None,
    cwd: Path | None = None,
) -> CheckRun:
    report = tmp_path / f"report-{len(list(tmp_path.iterdir()))}.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        f"--app={app_dir}",  # one argument: pytest takes a lone path for a test path
        *map(str, check_dirs),
    ]
    finished = subprocess.run(
        command,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        # Options given to the outer pytest (PYTEST_ADDOPTS=-k ...) are not the checks'.
        env={
            **{k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"},
            **(env or {}),
        },
    )
    outcomes = {}
    if report.exists():
        for case in ElementTree.parse(report).iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            kinds = {child.tag for child in case}
            outcome = next(
                (kind for kind in ("failure", "error", "skipped") if kind in kinds),
                "passed",
            )
            outcomes[name] = {"failure": "failed"}.get(outcome, outcome)
    return CheckRun(finished.returncode, finished.stdout + finished.stderr, outcomes)


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
