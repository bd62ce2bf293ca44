"""Stopping what the workshop started (workshop/processes.py, psutil): a process and what
it started, one that ignores Ctrl-C, and the leftovers of a run of the checks."""

import os
import subprocess
import sys
import time

import psutil
import pytest

from workshop import processes, progress

# A parent that starts a child and then waits; the child ignores Ctrl-C if told to.
FAMILY = """
import signal, subprocess, sys, time
child = "import signal, time; {ignore}; print('ready', flush=True); time.sleep(600)"
subprocess.Popen([sys.executable, "-c", child.format(ignore=sys.argv[1])])
time.sleep(600)
"""
IGNORE = "signal.signal(signal.SIGINT, signal.SIG_IGN)"


def family(ignore: str, **options) -> tuple[subprocess.Popen, psutil.Process]:
    parent = subprocess.Popen(
        [sys.executable, "-c", FAMILY, ignore], stdout=subprocess.PIPE, **options
    )
    assert parent.stdout is not None
    assert parent.stdout.readline() == b"ready\n"  # the child is up
    [child] = psutil.Process(parent.pid).children()
    return parent, child


@pytest.mark.parametrize("own_group", [False, True], ids=["in our group", "own group"])
def test_stop_ends_a_process_and_what_it_started(own_group):
    parent, child = family("pass", start_new_session=own_group)
    started = time.monotonic()
    processes.stop(parent, grace=5)
    assert parent.returncode is not None and not child.is_running()
    assert time.monotonic() - started < 5, "Ctrl-C alone should have stopped both"


def test_stop_kills_what_ignores_ctrl_c_after_the_grace():
    parent, child = family(IGNORE)
    processes.stop(parent, grace=0.5)
    assert parent.returncode is not None
    psutil.wait_procs([child], timeout=5)
    assert not child.is_running(), "the child that ignored Ctrl-C is still running"


def test_the_leftovers_of_a_run_are_found_and_stopped():
    run_id = f"test-{os.getpid()}-{time.monotonic_ns()}"
    parent, child = family(
        "pass", env={**os.environ, progress.RUN_MARKER: run_id}, start_new_session=True
    )
    try:
        found = {process.pid for process in progress.processes_of_run(run_id)}
        assert found == {parent.pid, child.pid}
        progress.stop_leftovers(run_id)
        assert progress.processes_of_run(run_id) == []
    finally:
        processes.stop(parent, grace=0.5)
