"""Stopping what the workshop started, the same way on Linux, macOS and Windows (psutil).

Every server, run of the checks or load generator the workshop starts is stopped here:
first as Ctrl-C would (a Cello server then shuts down cleanly, pytest stops the servers
its fixtures started), then, after a grace period, killed. Windows has no Ctrl-C to send
to another process, so there the first step is a polite terminate.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterable
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from workshop.launcher import Captured, Launched

GRACE_SECONDS = 5.0
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, ProcessLookupError)


def with_descendants(pid: int) -> list[psutil.Process]:
    """The process and everything it started (a server may fork workers), or [] if gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except _GONE:
        return []


def interrupt(processes: Iterable[psutil.Process]) -> None:
    """Ctrl-C for each (terminate on Windows); those already gone are skipped."""
    for process in processes:
        with contextlib.suppress(*_GONE, psutil.AccessDenied):
            if os.name == "nt":
                process.terminate()
            else:
                process.send_signal(signal.SIGINT)


def stop_all(processes: list[psutil.Process], grace: float = GRACE_SECONDS) -> None:
    """Interrupt, wait up to `grace` seconds, kill what is left."""
    interrupt(processes)
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(*_GONE, psutil.AccessDenied):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)


def stop(
    process: subprocess.Popen | Launched,
    grace: float = GRACE_SECONDS,
    interrupting: bool = True,
) -> None:
    """Stop a process this one started, with everything it started in turn.

    `interrupting=False` sends nothing first: for a process told to finish some other
    way (its input closed). Output still waiting in its pipes is read and dropped, so
    that a process blocked on a full pipe can finish.
    """
    if process.poll() is not None:
        _drain(process, grace)
        return
    descendants = with_descendants(process.pid)[1:]
    # Its own process group (start_new_session): what a terminal's Ctrl-C reaches.
    leads_a_group = os.name != "nt" and _group_of(process.pid) == process.pid
    if interrupting:
        if leads_a_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
        else:
            interrupt(with_descendants(process.pid))
    try:
        _drain(process, grace)
    except subprocess.TimeoutExpired:
        # Those it started too: one may hold our pipe after it is gone.
        for member in [*with_descendants(process.pid), *descendants]:
            with contextlib.suppress(*_GONE, psutil.AccessDenied):
                member.kill()
        if leads_a_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        try:
            _drain(process, grace)
        except subprocess.TimeoutExpired:  # a pipe held by a process not ours to know
            for stream in (process.stdout, process.stderr):
                if stream:
                    stream.close()
            process.wait()
    # What it started and left behind (a server stopped before its workers).
    stop_all([p for p in descendants if p.is_running()], grace)


def stop_and_read(process: subprocess.Popen | Captured, grace: float = 10.0) -> str:
    """Stop a run of the checks that leads its own session, and return what it printed
    (launcher.popen_captured starts those): SIGTERM first (pytest then stops the servers
    and browsers its fixtures started), SIGKILL to what is left of its session after
    `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return output or ""


def _drain(process: subprocess.Popen | Launched, timeout: float | None) -> None:
    """Wait for the process, reading (and dropping) what it still writes to our pipes."""
    if process.stdin and process.stdin.closed:
        process.stdin = None  # closed by us already: communicate() would flush it
    if process.stdout or process.stderr:
        process.communicate(timeout=timeout)
    else:
        process.wait(timeout)


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None
