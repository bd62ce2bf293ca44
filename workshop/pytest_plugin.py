"""Fixtures and reporting for the step checks (`pytest steps/stepN`), loaded by the root conftest.py.

A learner who fails a check reads one short paragraph: what the check wanted, what happened, and which
guide section explains it. Tracebacks into the harness would only hide that.
"""

import importlib.util
import itertools
import signal
import sys
from pathlib import Path

import pytest

from workshop.harness import start_server
from workshop.steps import ROOT, guide_link

_module_names = itertools.count()


def pytest_addoption(parser):
    parser.addoption(
        "--app",
        metavar="DIR",
        help="grade the app in DIR instead of the step's own folder (e.g. pytest steps/step4 --app solutions/step4)",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "guide(section): the guide section that explains this check"
    )
    # Each server runs in its own session (so stop() can end its whole group), which a terminal's Ctrl-C does
    # not reach. A SIGTERM (a CI timeout, `kill`) becomes a KeyboardInterrupt, so that the fixtures still stop them.
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"stopped by signal {signum}")


@pytest.fixture(scope="module")
def app_dir(request) -> Path:
    chosen = request.config.getoption("--app")
    folder = (
        (Path.cwd() / chosen).resolve()
        if chosen
        else Path(request.module.__file__).parent
    )
    if not (folder / "app.py").is_file():
        pytest.fail(f"There is no app.py in {folder}.", pytrace=False)
    return folder


@pytest.fixture(scope="module")
def server(app_dir):
    """The app under test, running on a free port for this test file."""
    running = start_server(app_dir)
    yield running
    running.stop()


@pytest.fixture
def connect(server):
    """connect() opens a new chat participant; every participant is closed after the test."""
    yield server.connect
    server.close_clients()


@pytest.fixture(scope="module")
def chat_module(app_dir):
    """The app module imported into the test process, for checks of plain functions and data."""
    sys.path.insert(0, str(app_dir))
    try:
        spec = importlib.util.spec_from_file_location(
            f"chat_app_{next(_module_names)}", app_dir / "app.py"
        )
        # A .py file always has both (this tells the type checker).
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(app_dir))
    return module


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if (
        report.failed
        and call.excinfo is not None
        and call.excinfo.errisinstance(AssertionError)
    ):
        if Path(item.fspath).is_relative_to(ROOT / "steps"):
            report.longrepr = _plain_failure(item, call.excinfo.value)
    return report


def _plain_failure(item, error: AssertionError) -> str:
    # The docstring's first paragraph, whole: it may run over several lines.
    what = " ".join(
        (item.function.__doc__ or item.name).strip().split("\n\n")[0].split()
    )
    # pytest appends its own "assert ..." introspection to a message; the message already says it in words.
    message = (
        str(error).split("\nassert ")[0].strip()
        or "an assertion without a message failed"
    )
    lines = [f"Check: {what}", "", *("  " + line for line in message.splitlines())]
    marker = item.get_closest_marker("guide")
    if marker:
        lines += ["", f"Read: {guide_link(marker.args[0])}"]
    server = item.funcargs.get("server")
    if server is not None and server.output().strip():
        lines += ["", "The server's last lines:", server.output_tail(8)]
    return "\n".join(lines)
