"""A real redis-server for the scale chapter (docs/scale.md): on a free port, nothing on disk.

    server = RedisServer().start()    # redis-server --port P --save '' --appendonly no
    server.url                        # redis://127.0.0.1:P: what the app reads as REDIS_URL
    server.stop(); server.start()     # gone, and back on the same port, empty
    server.stop()                     # also `with RedisServer().start() as server:`

An app folder with a broker.py (the scale chapter's) talks to Redis. `make step scale`
(workshop/serve.py) and the checks' harness (workshop/harness.py) start one for it when
none is given, and stop it with the app. The scale checks start their own, and stop and
restart it to play an outage.

Without redis-server a check skips, with the command that installs it; under CI (CI=true)
it fails instead, as the browser checks do (workshop/browser.py).
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

from workshop.ports import free_port

INSTALL = (
    "No redis-server on this machine for the scale chapter: install it with "
    "`sudo apt-get install redis-server` (Debian, Ubuntu) or `brew install redis` (macOS), "
    "or set REDIS_SERVER=/path/to/redis-server (docs/scale.md#run-it)."
)
STARTUP_SECONDS = 10


class RedisMissing(RuntimeError):
    """There is no redis-server to start."""


def find_redis_server() -> str | None:
    """REDIS_SERVER if it names a program, else redis-server on PATH, else None."""
    if "REDIS_SERVER" in os.environ:
        named = os.environ["REDIS_SERVER"]
        return named if os.path.isfile(named) and os.access(named, os.X_OK) else None
    return shutil.which("redis-server")


def needs_redis(app_dir: Path) -> bool:
    """An app with a broker.py (the scale chapter) talks to Redis."""
    return (Path(app_dir) / "broker.py").is_file()


def _prctl():
    """Linux's prctl(), looked up now: a forked child must not import anything."""
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with_parent() -> None:
    """The kernel stops this redis-server if whoever started it dies unawares."""
    _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RedisServer:
    """One redis-server of our own, on 127.0.0.1 and a free port (never Redis's 6379)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self._owner = os.getpid()  # a forked worker must not stop it

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> "RedisServer":
        """Start it (again, on the same port) and wait until it answers PING."""
        executable = find_redis_server()
        if executable is None:
            raise RedisMissing(INSTALL)
        self.process = subprocess.Popen(
            [
                executable,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *(
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ),  # forgets everything when stopped
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C meant for the app must not stop Redis first.
            start_new_session=True,
            preexec_fn=_die_with_parent if _PRCTL else None,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server on port {self.port} exited at once (status "
                    f"{self.process.returncode}): is the port taken?"
                )
            if self.answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {STARTUP_SECONDS} s")

    def answers(self) -> bool:
        try:
            with socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.5
            ) as link:
                link.sendall(b"PING\r\n")
                return link.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop it, as `redis-server` does on SIGTERM: it closes every connection."""
        if os.getpid() != self._owner:
            return
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def unavailable(reason: str) -> NoReturn:
    """Skip the check that needs Redis; under CI=true, fail it: it must run there."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so the Redis checks must run: {reason}", pytrace=False)
    pytest.skip(reason)


def for_a_check(app_dir: Path, given: dict) -> RedisServer | None:
    """A started redis-server of its own for an app with a broker.py, unless the check
    gave it one (given["REDIS_URL"]); None for the other apps. A REDIS_URL inherited from
    the shell is not used: every check's room is its own. Skips without redis-server."""
    if not needs_redis(app_dir) or "REDIS_URL" in given:
        return None
    try:
        return RedisServer().start()
    except RedisMissing as missing:
        why = str(missing)
    unavailable(why)  # outside the except block: a chained traceback would hide why


def for_the_app(app_dir: Path) -> RedisServer | None:
    """`make step scale`: a redis-server for an app with a broker.py, unless REDIS_URL
    names one; it is stopped when this process exits, with the app."""
    if not needs_redis(app_dir) or os.environ.get("REDIS_URL"):
        return None
    try:
        server = RedisServer().start()
    except RedisMissing as missing:
        print(
            f"{missing} Meanwhile each process is a room of its own.", file=sys.stderr
        )
        return None
    atexit.register(server.stop)
    os.environ["REDIS_URL"] = server.url
    print(f"Redis for the room: {server.url} (REDIS_URL), stopped with the app.")
    return server
