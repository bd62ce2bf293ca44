"""Fixtures and reporting for the step checks (`pytest steps/stepN`), loaded by the root conftest.py.

A learner who fails a check reads one short paragraph: what the check wanted, what happened, and which
guide section explains it, then the errors and last lines of the server. Tracebacks into the harness
(or into a library) would only hide that; `pytest --tb=long` still shows them, for whoever maintains
the checks.

More promises, kept here for every check:
- A check during which the server logged an error fails, quoting Cello's line, even when what the
  check looked at went well: a handler that died is a bug, whatever the check was about.
- A run stops waiting for nothing: once its checks have waited CHECK_GIVE_UP_SECONDS in all for
  events that never came, the checks left are skipped, saying why (the rest would wait too).
  So are they once a check has found the code waiting for a lock it already holds.
- A check whose fixture finds the code not ready (a name missing) failed: no pytest error.
- Importing app.py, and every call into it, has a deadline (workshop/harness.py).
- The slow checks wait their turn: a browser's (a Chromium, tabs) and a crowd's
  (`@pytest.mark.crowd`, hundreds of connections) run only while the app's checks
  before them pass; after a failure they would only spend seconds failing too, so they
  are skipped, saying why (CHECK_GIVE_UP_SECONDS=never runs them all, as the
  repository's own tests do). The page's checks sit in test_*_page.py, after the others.
"""

import importlib.util
import itertools
import os
import signal
import sys
import traceback
from pathlib import Path

import pytest

from workshop import diagnoses
from workshop.harness import (
    WAIT_SECONDS,
    ChatServer,
    LockTakenTwice,
    quote_problems,
    start_server,
    waited_in_vain,
    warm_up,
)
from workshop.steps import guide_link

_module_names = itertools.count()
# After this many seconds of waits that ended in nothing, the checks left are not run.
GIVE_UP = os.environ.get("CHECK_GIVE_UP_SECONDS", str(2 * WAIT_SECONDS))


def pytest_addoption(parser):
    parser.addoption(
        "--app",
        metavar="DIR",
        action="append",
        help="grade the app in DIR instead of the step's own folder (e.g. pytest steps/step4 "
        "--app solutions/step4); given several times, every check runs on each (the "
        "mistakes gate, workshop/mistakes.py)",
    )


def pytest_generate_tests(metafunc):
    apps = metafunc.config.getoption("--app") or []
    if len(apps) > 1 and "app_dir" in metafunc.fixturenames:
        metafunc.parametrize(
            "app_dir",
            apps,
            indirect=True,
            scope="module",
            ids=[f"app{number}" for number in range(len(apps))],
        )


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "crowd: fills the server with hundreds of connections (progress: last)",
    )
    config.addinivalue_line(
        "markers", "guide(section): the guide section that explains this check"
    )
    # Each server runs in its own session (so stop() can end its whole group), which a terminal's Ctrl-C does
    # not reach. A SIGTERM (a CI timeout, `kill`) becomes a KeyboardInterrupt, so that the fixtures still stop them.
    signal.signal(signal.SIGTERM, _interrupt)


_warming: list[bool] = []


def pytest_itemcollected(item):
    """The first check found: this run will start servers, so get ready to start them."""
    if not _warming and is_step_check(item):
        _warming.append(True)
        warm_up()


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def is_step_check(item) -> bool:
    """A check of a step or chapter: a test file in steps/<folder>/, wherever steps/ is."""
    return Path(item.fspath).parent.parent.name == "steps"


@pytest.fixture(scope="module")
def app_dir(request) -> Path:
    chosen = (
        getattr(request, "param", None)
        or (request.config.getoption("--app") or [None])[0]
    )
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
    # Its own messages.py, not one that another app (graded in this run) imported first.
    for name in [path.stem for path in app_dir.glob("*.py")]:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(app_dir))
    try:
        spec = importlib.util.spec_from_file_location(
            f"chat_app_{next(_module_names)}", app_dir / "app.py"
        )
        # A .py file always has both (this tells the type checker).
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as problem:
            raise AssertionError(
                f"Importing app.py failed: {import_error(problem, app_dir)}"
            ) from None
    finally:
        sys.path.remove(str(app_dir))
    return module


def import_error(problem: Exception, app_dir: Path) -> str:
    """An exception raised while importing the learner's file, as one line with its place."""
    if isinstance(problem, SyntaxError):
        place = f"{Path(problem.filename or 'app.py').name}, line {problem.lineno}"
        code = (problem.text or "").strip()
        return f"SyntaxError: {problem.msg} ({place}: `{code}`)"
    frames = [
        diagnoses.Frame(f.filename, f.lineno or 0, f.name)
        for f in reversed(traceback.extract_tb(problem.__traceback__))
    ]
    mine = diagnoses.learner_frames(frames, app_dir)
    place = f" ({diagnoses.place(mine[0])})" if mine else ""
    return f"{type(problem).__name__}: {problem}{place}"


# --- the slow checks wait their turn -----------------------------------------------------------

NOT_RUN_YET = (
    "not run yet: the browser and crowd checks run once the checks before them pass "
    "(they would only fail too). Fix the failures above first."
)
STUCK = (
    "not run: the code is stuck on a lock it already holds (the failure above says "
    "where), and the other checks would only wait for it too. Fix that first."
)


def is_slow(item) -> bool:
    uses_browser = "browser" in getattr(item, "fixturenames", ())
    return uses_browser or item.get_closest_marker("crowd") is not None


def _app_of(item) -> object:
    return getattr(getattr(item, "callspec", None), "params", {}).get("app_dir")


# --- each check: the server's errors fail it, and a run that only waits gives up -----------------


# The app the last check graded (several with --app A --app B).
_graded: list[object] = [None]
_failed_apps: set = set()  # the apps with a failed check so far
_stuck_apps: set = set()  # the apps found waiting for a lock they hold


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if not is_step_check(item) or GIVE_UP.lower() in ("", "0", "none", "never"):
        return
    app = _app_of(item)
    if app in _stuck_apps:
        pytest.skip(STUCK)
    if is_slow(item) and app in _failed_apps:
        pytest.skip(NOT_RUN_YET)
    if app != _graded[0]:  # each app has its own patience
        _graded[0] = app
        waited_in_vain[0] = 0.0
    if waited_in_vain[0] >= float(GIVE_UP):
        pytest.skip(
            "not run: the checks above gave up on answers that never came (their "
            f"deadlines add up to {waited_in_vain[0]:g} s), and this one would wait too. "
            "Fix the first failure above, then run the checks again."
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if not is_step_check(item):
        return (yield)
    ChatServer.started[:] = [s for s in ChatServer.started if s._final_output is None]
    for running in ChatServer.started:
        running.check_start = running.reported = len(running.output())
    item._servers_before = set(map(id, ChatServer.started))
    result = yield
    logged = [line for s in _servers_of(item) for line in s.new_problems()]
    if logged:
        raise AssertionError(
            "What this check looked at went well, but the server logged an error "
            "meanwhile: a handler that fails drops its participant."
            + quote_problems(logged)
        )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """With several apps (--app A --app B), one app's servers stop within its own checks,
    not in the next app's first setup: the mistakes gate times each app by its checks."""
    result = yield
    app = _app_of(item)
    if app is not None and _app_of(nextitem) != app:
        for fixturedef in item._fixtureinfo.name2fixturedefs.get("app_dir", ()):
            fixturedef.finish(item._request)  # its dependents (servers) finish first
    return result


def _servers_of(item) -> list[ChatServer]:
    """The servers this check used: its fixtures', and the ones it started itself."""
    fixtures = {id(v): v for v in item.funcargs.values() if isinstance(v, ChatServer)}
    before: set[int] = getattr(item, "_servers_before", set())
    return [s for s in ChatServer.started if id(s) in fixtures or id(s) not in before]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and is_step_check(item):
        app = _app_of(item)
        _failed_apps.add(app)
        if call.excinfo and call.excinfo.errisinstance(LockTakenTwice):
            _stuck_apps.add(app)
        # Code not ready for the check (a name missing): a failed check, no pytest error.
        if (
            report.when == "setup"
            and call.excinfo
            and call.excinfo.errisinstance((AssertionError, pytest.fail.Exception))
        ):
            report.when = "call"
    if (
        report.failed
        and call.excinfo is not None
        and is_step_check(item)
        and item.config.option.tbstyle == "auto"
        and not call.excinfo.errisinstance((KeyboardInterrupt, pytest.skip.Exception))
    ):
        report.longrepr = _plain_failure(item, call.excinfo)
    return report


def _plain_failure(item, excinfo) -> str:
    error = excinfo.value
    # The docstring's first paragraph, whole: it may run over several lines.
    what = " ".join(
        (item.function.__doc__ or item.name).strip().split("\n\n")[0].split()
    )
    if isinstance(error, AssertionError) or excinfo.errisinstance(
        pytest.fail.Exception
    ):
        # pytest appends its own "assert ..." introspection to a message; the message says it in words.
        message = (
            str(error).split("\nassert ")[0].strip()
            or "an assertion without a message failed"
        )
    else:
        message = _unexpected(excinfo)
    lines = [f"Check: {what}", "", *("  " + line for line in message.splitlines())]
    servers = [s for s in _servers_of(item) if s.accepted]
    logged = [line for s in servers for line in s.new_problems()]
    if logged:
        lines += ["", *quote_problems(logged).strip("\n").splitlines()]
    section = getattr(error, "read", None)
    marker = item.get_closest_marker("guide")
    if section or marker:
        lines += ["", f"Read: {guide_link(section or marker.args[0])}"]
    for running in servers:
        if running.output().strip():
            lines += ["", "The server's last lines:", running.output_tail(8)]
    return "\n".join(lines)


def _unexpected(excinfo) -> str:
    """An exception that is not a check's own failure, in one sentence and its place."""
    entry = next(
        (
            e
            for e in reversed(excinfo.traceback)
            if Path(str(e.path)).parent.parent.name == "steps"
        ),
        None,
    )
    place = (
        f" (at {Path(str(entry.path)).name}, line {entry.lineno + 1})" if entry else ""
    )
    return f"The check stopped on an unexpected {excinfo.typename}: {excinfo.value}{place}."
