"""A server started by forking the launcher (workshop/launcher.py) is what a fresh
`python app.py` would be: same arguments, folder, sys.path, environment, session,
command line, output and exit status. The harness uses it on Linux to start the
checks' servers faster; nothing a check looks at may differ."""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile

import psutil
import pytest

from workshop import harness, launcher

pytestmark = pytest.mark.skipif(
    not launcher.available(), reason="the launcher forks: Linux only"
)

PROBE = """
import json, os, sys, psutil
me = psutil.Process()
print(json.dumps({
    "argv": sys.argv[1:],
    "argv0": os.path.basename(sys.argv[0]),
    "path0": sys.path[0],
    "cwd": os.getcwd(),
    "name": __name__,
    "probe": os.environ.get("PROBE"),
    "stacks file": os.environ.get("WORKSHOP_STACKS_FILE"),
    "switch interval": sys.getswitchinterval(),
    "own session": os.getsid(0) == os.getpid(),
    "command line": me.cmdline(),
    "process name": me.name(),
    "stdin": os.read(0, 10).decode(),
    "stdout buffered": not sys.stdout.write_through,
}), flush=True)
print("to errors", file=sys.stderr, flush=True)
sys.exit(int(sys.argv[-1]))
"""


@pytest.fixture
def app(tmp_path):
    (tmp_path / "app.py").write_text(PROBE)
    yield tmp_path / "app.py"
    launcher.close_all()


def run(command, environment, start, cwd=harness.ROOT):
    """What the command printed, and its exit status."""
    with tempfile.TemporaryFile() as output:
        if start == "launcher":
            process = launcher.launch(command, cwd, environment, output.fileno())
            assert process is not None, "the launcher did not take the command"
        else:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        status = process.wait(timeout=20)
        output.seek(0)
        return output.read().decode(), status


def test_a_launched_app_sees_what_a_fresh_interpreter_would(app):
    environment = harness.server_environment()
    environment.update(
        PROBE="this server's own",
        WORKSHOP_STACKS_FILE=str(app.with_suffix(".stacks")),
        WORKSHOP_SWITCH_INTERVAL="0.0001",
    )
    command = [sys.executable, str(app), "--port", "1234", "3"]
    fresh, fresh_status = run(command, environment, "popen")
    launched, launched_status = run(command, environment, "launcher")
    assert (launched_status, fresh_status) == (3, 3)
    first, second = (
        json.loads(launched.splitlines()[0]),
        json.loads(fresh.splitlines()[0]),
    )
    assert first == second, f"launched: {first}\nfresh:    {second}"
    assert first["command line"] == command and first["name"] == "__main__"
    assert launched.splitlines()[1] == "to errors"


def test_a_launched_module_runs_as_python_m_would(app):
    command = [sys.executable, "-m", "workshop.serve", str(app.parent), "--port", "0"]
    environment = harness.server_environment()
    fresh, fresh_status = run(command, environment, "popen")
    launched, launched_status = run(command, environment, "launcher")
    assert launched_status == fresh_status and launched == fresh


def test_an_error_in_the_app_reads_as_it_would_without_the_launcher(app):
    app.write_text("import sys\n\nraise RuntimeError('broken at import')\n")
    command = [sys.executable, str(app)]
    fresh, fresh_status = run(command, harness.server_environment(), "popen")
    launched, status = run(command, harness.server_environment(), "launcher")
    assert status == fresh_status == 1
    assert launched == fresh, f"launched:\n{launched}\nfresh:\n{fresh}"


def test_a_server_outlives_a_killed_launcher_and_can_still_be_stopped(app):
    app.write_text("import time\n\ntime.sleep(60)\n")
    launcher.close_all()  # the one this test starts is then the only one
    with tempfile.TemporaryFile() as output:
        process = launcher.launch(
            [sys.executable, str(app)],
            harness.ROOT,
            harness.server_environment(),
            output.fileno(),
        )
        assert process is not None
        [connection] = [c for c in launcher._connections.values() if c is not None]
        connection.process.kill()
        connection.process.wait()
        assert process.poll() is None, "the server should still run"
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
        assert not psutil.pid_exists(process.pid) or (
            psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE
        )


def test_commands_it_cannot_run_as_a_fork_are_left_to_the_caller(app, monkeypatch):
    environment = harness.server_environment()
    for command in (
        ["/bin/echo", "hello"],  # not Python
        ["/usr/bin/env", "python3", str(app)],  # another interpreter, perhaps
        [sys.executable, "-c", "print(1)"],  # not a file or the runner
    ):
        assert launcher.launch(command, harness.ROOT, environment, 1) is None, command
    monkeypatch.setenv("WORKSHOP_LAUNCHER", "0")
    assert (
        launcher.launch([sys.executable, str(app)], harness.ROOT, environment, 1)
        is None
    )


PYTEST_PROBE = """
import json, os, sys

import psutil
import workshop


def test_probe():
    print(json.dumps({
        "argv": sys.argv[1:],
        "path0": sys.path[0],
        "cwd": os.getcwd(),
        "workshop": workshop.__file__,
        "probe": os.environ.get("PROBE"),
        "own session": os.getsid(0) == os.getpid(),
        "stdin": os.read(0, 10).decode(),
        "stdout buffered": not sys.stdout.write_through,
    }))
    print("to errors", file=sys.stderr)
    assert os.environ["PROBE"] == "pass"
"""


@pytest.mark.parametrize("verdict", ["pass", "fail"])
def test_a_launched_pytest_runs_as_python_m_pytest_would(tmp_path, verdict):
    """A run of the checks forked from the pytest launcher prints the same report and
    ends the same way, and imports the workshop from its own folder (a clone's), not
    from the repository the launcher started in."""
    (tmp_path / "workshop").mkdir()
    (tmp_path / "workshop" / "__init__.py").write_text("")
    (tmp_path / "test_probe.py").write_text(PYTEST_PROBE)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "-q"]
    environment = {**os.environ, "PROBE": verdict}
    environment.pop("PYTEST_ADDOPTS", None)
    try:
        launched = launcher.popen_captured(command, tmp_path, environment)
        assert isinstance(launched, launcher.Captured), "the launcher did not take it"
        output, _ = launched.communicate(timeout=60)
    finally:
        launcher.close_all()
    fresh, fresh_status = run(command, environment, "popen", cwd=tmp_path)
    assert launched.returncode == fresh_status == (0 if verdict == "pass" else 1)
    timeless = re.compile(r" in [0-9.]+s")
    assert timeless.sub("", output) == timeless.sub("", fresh)
    probe = json.loads(next(line for line in output.splitlines() if "argv" in line))
    assert probe["workshop"] == str(tmp_path / "workshop" / "__init__.py")
    assert probe["path0"] == probe["cwd"] == str(tmp_path)


def test_a_run_that_outlasts_its_timeout_is_stopped(tmp_path):
    (tmp_path / "test_slow.py").write_text(
        "import time\n\ndef test_slow():\n    time.sleep(60)\n"
    )
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            launcher.run_captured(command, tmp_path, dict(os.environ), timeout=3)
    finally:
        launcher.close_all()
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
