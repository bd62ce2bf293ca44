"""Start the checks' servers by forking one process that has imported Cello already (Linux).

A check's server is a fresh `python -m workshop.serve FOLDER ...` (harness.server_command),
and a fresh interpreter spends about 0.15 s of CPU importing Python, Cello and the app's
libraries before it serves: a learner's run of a step's checks starts several, `make test`
about 490. The first server a test process starts also starts this module's
*launcher*, which imports all that once and then forks for each server. The child sets up
what the fresh interpreter would have (arguments, environment, working folder, sys.path,
the sitecustomize, a session of its own, its output file) and runs the same module or
app.py, so a check cannot tell the difference (docs/performance.md#launcher).

Only where the command is one of the two the harness uses and the interpreter would start
the same way: same executable, same PYTHON* and locale variables. Otherwise, and on macOS
and Windows (fork without exec is unsafe or missing there), the harness starts the command
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
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import psutil

# What every chat app imports (Cello imports asyncio to run), imported once in the launcher.
PRELOAD = ("cello", "workshop.serve", "asyncio")
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

    def __init__(self, environment: dict[str, str]):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        own = {k: v for k, v in environment.items() if k not in PER_SERVER}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workshop.launcher", str(theirs.fileno())],
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


def _job(command: list[str]) -> dict | None:
    """The request for a command the launcher can run: `python -m workshop.serve ...`
    or `python path/app.py ...`; None for any other."""
    if len(command) < 2 or command[0] != sys.executable:
        return None
    if command[1:3] == ["-m", "workshop.serve"]:
        return {"module": "workshop.serve", "argv": command[3:]}
    if command[1].endswith(".py") and not command[1].startswith("-"):
        return {"path": command[1], "argv": command[2:]}
    return None


def prepare(environment: dict[str, str]) -> None:
    """Start the launcher for servers with this environment now, if it is not started:
    the first server then starts as fast as the next."""
    if available():
        _connection(environment)


def launch(
    command: list[str], cwd: Path, environment: dict[str, str], output: int
) -> Launched | None:
    """Start `command` as a fork of this process's launcher (started on first use), its
    output and errors to the file descriptor `output`; None where it cannot."""
    job = _job(command)
    if job is None or not available():
        return None
    connection = _connection(environment)
    if connection is None:
        return None
    request = {**job, "cwd": str(cwd), "env": environment, "title": command}
    started = connection.launch(request, output)
    if started is None:
        return None
    return Launched(command, *started)


def _connection(environment: dict[str, str]) -> _Connection | None:
    key = _startup_values(environment)
    with _connections_lock:
        if key not in _connections:
            if not _connections:
                atexit.register(close_all)
            connection = _Connection(environment)
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


def serve(control: socket.socket) -> Callable[[], None]:
    """Fork a child for each request until the socket ends. Returns only in a child: the
    job it is to run, everything of the launcher's closed."""
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(name)
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
                return _child(request, output)
            os.close(output)
            pidfd = os.pidfd_open(pid)
            children[pidfd] = (pid, status)
            waiting.register(pidfd, select.POLLIN)
            control.send(json.dumps({"pid": pid}).encode())


def _child(request: dict, output: int) -> Callable[[], None]:
    """Become what `python -m MODULE ARGS` (or `python PATH ARGS`) would be."""
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
    # What it does with the server's own environment (server_site/sitecustomize.py).
    site = getattr(sys.modules.get("sitecustomize"), "__file__", None)
    if site:
        runpy.run_path(site, run_name="sitecustomize")

    def job() -> None:
        try:
            if script is None:
                sys.argv = [request["module"], *request["argv"]]
                sys.modules.pop(request["module"], None)  # runs afresh, as __main__
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
    job = serve(socket.socket(fileno=int(sys.argv[1])))
    job()  # in a forked child: the interpreter ends as a fresh one would after it
