"""Start the checks' servers by forking one process that has imported Cello already (Linux).

A check's server is a fresh `python -m workshop.serve FOLDER ...` (harness.server_command),
and a fresh interpreter spends about 0.15 s of CPU importing Python, Cello and the app's
libraries before it serves: a learner's run of a step's checks starts several, `make test`
about 490. The first server a test process starts also starts this module's
*launcher*, which imports all that once and then forks for each server. The child sets up
what the fresh interpreter would have (arguments, environment, working folder, sys.path,
the sitecustomize, a session of its own, its output file) and runs the same module or
app.py, so a check cannot tell the difference (docs/performance.md#launcher).

The checks themselves run the same way where the repository's tests start them (the
mistakes gate, the ladder of tests/test_steps.py): `python -m pytest ...` forked from a
second kind of launcher, which has imported pytest and the checks' libraries, but nothing
of the workshop's own (that comes from the tree the run grades); `run_captured` starts it.

Only where the command is one the launcher knows and the interpreter would start the same
way: same executable, same PYTHON* and locale variables. Otherwise, and on macOS and
Windows (fork without exec is unsafe or missing there), the caller starts the command
itself (`launch` returns None).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import psutil

from workshop import processes

# What each kind of launcher imports once: what every chat app imports (Cello imports
# asyncio to run), or what a run of the checks does (pytest, Playwright, the clients).
PRELOAD = {
    "server": ("cello", "workshop.serve", "asyncio"),
    "pytest": (
        "pytest",  # not its plugins (xdist): pytest rewrites their asserts on import
        "playwright.sync_api",
        "websockets.sync.client",
        "psutil",
        "xml.etree.ElementTree",
        "pygments.lexers.python",
        "pygments.formatters.terminal",
    ),
}
# A run of the checks imports these afresh from the folder it runs in (a clone's own).
FRESH = {"pytest": ("workshop", "conftest")}
# Read by the interpreter when it starts: a launcher serves only commands whose environment
# has the same values for these as its own (else the fork would differ from a fresh start).
STARTUP_VARIABLES = ("PYTHON", "LC_", "LANG")
# Per server, read by the sitecustomize at start: never the launcher's own.
PER_SERVER = ("WORKSHOP_STACKS_FILE", "WORKSHOP_SWITCH_INTERVAL")
READY_SECONDS = 15.0
MESSAGE_BYTES = 1 << 20


def available() -> bool:
    return sys.platform == "linux" and hasattr(os, "pidfd_open") and not _disabled()


def _disabled() -> bool:
    return os.environ.get("WORKSHOP_LAUNCHER", "1") in ("0", "")


# --- the harness's side ------------------------------------------------------------------


class Launched:
    """A server started by the launcher, with the parts of subprocess.Popen the harness
    and workshop/processes.py use. Its exit status comes through a pipe from the launcher,
    which is its parent."""

    stdin = stdout = stderr = None

    def __init__(self, args: list[str], pid: int, status: int):
        self.args, self.pid, self._status = args, pid, status
        self.returncode: int | None = None
        self._lock = threading.Lock()  # a client's thread may ask too

    def poll(self) -> int | None:
        if self.returncode is None:
            self._settle(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and not self._settle(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __del__(self) -> None:
        if self._status >= 0:
            os.close(self._status)

    def _settle(self, timeout: float | None) -> bool:
        """Wait up to `timeout` for its end; True once `returncode` is set."""
        with self._lock:
            return self.returncode is not None or self._settle_alone(timeout)

    def _settle_alone(self, timeout: float | None) -> bool:
        if self._status >= 0:
            # poll(), not select(): a crowd check holds more than select's 1,024 files.
            waiting = select.poll()
            waiting.register(self._status, select.POLLIN)
            if not waiting.poll(None if timeout is None else max(0, timeout) * 1000):
                return False
            line = os.read(self._status, 64)
            os.close(self._status)
            self._status = -1
            if line.strip():
                self.returncode = int(line)
                return True
        # Its launcher ended first (killed): ask the system; the status is unknown.
        if _alive(self.pid, timeout):
            return False
        self.returncode = -signal.SIGKILL
        return True


class Captured(Launched):
    """A command started by the launcher with its output and errors in a pipe: the parts
    of subprocess.Popen(..., stdout=PIPE, stderr=STDOUT, text=True) its callers use."""

    def __init__(self, args: list[str], pid: int, status: int, output: int):
        super().__init__(args, pid, status)
        self._output, self._read = output, bytearray()

    def communicate(self, timeout: float | None = None) -> tuple[str, None]:
        """Everything it printed once it ends; TimeoutExpired (keeping what came so
        far for the next call) if that takes more than `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waiting = select.poll()
        waiting.register(self._output, select.POLLIN)
        while self._output >= 0:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            if waiting.poll(None if left is None else left * 1000):
                chunk = os.read(self._output, 1 << 16)
                if chunk:
                    self._read += chunk
                else:
                    os.close(self._output)
                    self._output = -1
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        self.wait(left)
        return self._read.decode("utf-8", "replace"), None

    def __del__(self) -> None:
        super().__del__()
        if self._output >= 0:
            os.close(self._output)


def popen_captured(
    command: list[str], cwd: Path, environment: dict[str, str]
) -> Captured | subprocess.Popen:
    """`command` in a session of its own, its output and errors in one pipe: forked from
    a launcher where it can, else started the usual way."""
    reader, writer = os.pipe()
    try:
        started = _start(command, cwd, environment, writer)
    finally:
        os.close(writer)
    if started is not None:
        return Captured(command, *started, reader)
    os.close(reader)
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )


def run_captured(
    command: list[str], cwd: Path, environment: dict[str, str], timeout: float
) -> tuple[int, str]:
    """Run `command` to its end, as popen_captured starts it: its exit status and what
    it printed. Past `timeout` seconds, or on Ctrl-C, it is stopped (and the error
    raised): it runs in its own session, where a Ctrl-C in the terminal does not reach."""
    process = popen_captured(command, cwd, environment)
    try:
        output, _ = process.communicate(timeout=timeout)
    except BaseException:
        processes.stop_and_read(process)
        raise
    return process.wait(), output


def _alive(pid: int, timeout: float | None) -> bool:
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.TimeoutExpired:
        return True
    except psutil.NoSuchProcess:
        pass
    return False


class _Connection:
    """One launcher, started by this process, and the socket it listens on."""

    def __init__(self, kind: str, environment: dict[str, str]):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        own = {k: v for k, v in environment.items() if k not in PER_SERVER}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workshop.launcher", str(theirs.fileno()), kind],
            cwd=Path(__file__).resolve().parent.parent,
            env=own,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            start_new_session=True,  # a Ctrl-C in the terminal is for the test run
        )
        theirs.close()
        self.socket, self.lock = ours, threading.Lock()
        ours.settimeout(READY_SECONDS)
        try:
            ready = ours.recv(MESSAGE_BYTES)
        except OSError:
            ready = b""
        ours.settimeout(None)
        self.ready = ready == b"ready"

    def launch(self, request: dict, output: int) -> tuple[int, int] | None:
        status_read, status_write = os.pipe()
        try:
            with self.lock:
                socket.send_fds(
                    self.socket, [json.dumps(request).encode()], [output, status_write]
                )
                answer = json.loads(self.socket.recv(MESSAGE_BYTES) or b"{}")
        except (OSError, ValueError):
            answer = {}
        finally:
            os.close(status_write)
        if "pid" not in answer:
            os.close(status_read)
            return None
        return answer["pid"], status_read

    def close(self) -> None:
        self.socket.close()  # the launcher ends when it reads the end of its socket
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


_connections: dict[tuple, _Connection | None] = {}
_connections_lock = threading.Lock()


def _startup_values(environment: dict[str, str]) -> tuple:
    return tuple(
        sorted(
            (k, v) for k, v in environment.items() if k.startswith(STARTUP_VARIABLES)
        )
    )


def _job(command: list[str]) -> tuple[str, dict] | None:
    """The kind of launcher and the request for a command it can run: `python -m
    workshop.serve ...` or `python path/app.py ...` (a server), `python -m pytest ...`
    (the checks); None for any other."""
    if len(command) < 2 or command[0] != sys.executable:
        return None
    if command[1:3] == ["-m", "workshop.serve"]:
        return "server", {"module": "workshop.serve", "argv": command[3:]}
    if command[1:3] == ["-m", "pytest"]:
        return "pytest", {"module": "pytest", "argv": command[3:]}
    if command[1].endswith(".py") and not command[1].startswith("-"):
        return "server", {"path": command[1], "argv": command[2:]}
    return None


def prepare(environment: dict[str, str]) -> None:
    """Start the launcher for servers with this environment now, if it is not started:
    the first server then starts as fast as the next."""
    if available():
        _connection("server", environment)


def launch(
    command: list[str], cwd: Path, environment: dict[str, str], output: int
) -> Launched | None:
    """Start `command` as a fork of this process's launcher (started on first use), its
    output and errors to the file descriptor `output`; None where it cannot."""
    started = _start(command, cwd, environment, output)
    return None if started is None else Launched(command, *started)


def _start(
    command: list[str], cwd: Path, environment: dict[str, str], output: int
) -> tuple[int, int] | None:
    """The pid of `command` forked from its kind of launcher, and the pipe its exit
    status comes through; None where it cannot be."""
    found = _job(command)
    if found is None or not available():
        return None
    kind, job = found
    connection = _connection(kind, environment)
    if connection is None:
        return None
    request = {**job, "cwd": str(cwd), "env": environment, "title": command}
    return connection.launch(request, output)


def _connection(kind: str, environment: dict[str, str]) -> _Connection | None:
    key = (kind, *_startup_values(environment))
    with _connections_lock:
        if key not in _connections:
            if not _connections:
                atexit.register(close_all)
            connection = _Connection(kind, environment)
            if not connection.ready:  # it could not import Cello, or no pidfd_open
                connection.close()
            _connections[key] = connection if connection.ready else None
        return _connections[key]


def close_all() -> None:
    """Stop this process's launchers (the servers they started are the harness's to stop)."""
    with _connections_lock:
        for connection in _connections.values():
            if connection is not None:
                connection.close()
        _connections.clear()


# --- the launcher's side ----------------------------------------------------------------


def serve(control: socket.socket, kind: str) -> Callable[[], None]:
    """Fork a child for each request until the socket ends. Returns only in a child: the
    job it is to run, everything of the launcher's closed."""
    for name in PRELOAD[kind]:
        with contextlib.suppress(ImportError):
            __import__(name)
    if kind == "pytest":  # where pytest looks for plugins, read once
        import importlib.metadata

        importlib.metadata.entry_points(group="pytest11")
    os.close(os.pidfd_open(os.getpid()))  # Linux 5.3 or later, else no launcher
    control.send(b"ready")
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (pid, status pipe)
    waiting = select.poll()
    waiting.register(control, select.POLLIN)
    while True:
        for fd, _ in waiting.poll():
            if fd in children:
                pid, status = children.pop(fd)
                waiting.unregister(fd)
                _, how = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):
                    os.write(status, b"%d\n" % os.waitstatus_to_exitcode(how))
                os.close(status)
                os.close(fd)
                continue
            message, fds, _, _ = socket.recv_fds(control, MESSAGE_BYTES, 2)
            if not message:
                sys.exit(0)
            output, status = fds
            try:
                request = json.loads(message)
                pid = os.fork()
            except (OSError, ValueError):
                os.close(output)
                os.close(status)
                control.send(b"{}")
                continue
            if pid == 0:
                for pidfd, (_, other) in children.items():
                    os.close(pidfd)
                    os.close(other)
                os.close(status)
                control.close()
                return _child(request, output, FRESH.get(kind, ()))
            os.close(output)
            pidfd = os.pidfd_open(pid)
            children[pidfd] = (pid, status)
            waiting.register(pidfd, select.POLLIN)
            control.send(json.dumps({"pid": pid}).encode())


def _child(request: dict, output: int, fresh: tuple[str, ...]) -> Callable[[], None]:
    """Become what `python -m MODULE ARGS` (or `python PATH ARGS`) would be; the modules
    named in `fresh` (and theirs) are forgotten, to be imported again from its folder."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(null)
    os.close(output)
    _call_itself(request["title"])
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # As the interpreter puts them first: the working folder for -m, else the script's.
    script = request.get("path")
    sys.path[0] = str(Path(script).resolve().parent) if script else request["cwd"]
    for name in [m for m in sys.modules if m.split(".")[0] in fresh]:
        del sys.modules[name]
    # What it does with the server's own environment (server_site/sitecustomize.py).
    site = getattr(sys.modules.get("sitecustomize"), "__file__", None)
    if site:
        runpy.run_path(site, run_name="sitecustomize")

    def job() -> None:
        try:
            if script is None:
                sys.argv = [request["module"], *request["argv"]]
                # Runs afresh, as __main__ (a package runs its __main__, never imported).
                if not hasattr(sys.modules.get(request["module"]), "__path__"):
                    sys.modules.pop(request["module"], None)
                runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            else:
                sys.argv = [script, *request["argv"]]
                runpy.run_path(script, run_name="__main__")
        except Exception as error:  # its traceback, without this module's frames
            error = error.with_traceback(_from_the_job(error.__traceback__))
            sys.excepthook(type(error), error, error.__traceback__)
            sys.exit(1)

    return job


def _call_itself(command: list[str]) -> None:
    """Show `command` where ps and psutil look for a process's command line (else all
    servers would read `python -m workshop.launcher`); its name stays the launcher's."""
    with contextlib.suppress(ImportError, OSError, AttributeError):
        import setproctitle

        name = psutil.Process().name()
        setproctitle.setproctitle(" ".join(command))
        # setproctitle renames the process too: prctl(PR_SET_NAME) puts it back.
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode()[:15], 0, 0, 0)


def _from_the_job(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame outside this module and runpy."""
    skipped = {__file__, runpy.__file__, "<frozen runpy>"}
    while tb is not None and tb.tb_frame.f_code.co_filename in skipped:
        tb = tb.tb_next
    return tb


if __name__ == "__main__":
    job = serve(socket.socket(fileno=int(sys.argv[1])), sys.argv[2])
    job()  # in a forked child: the interpreter ends as a fresh one would after it
