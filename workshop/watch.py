"""Rerun a step's checks whenever one of its files changes.  `make watch N`, Ctrl-C stops it.

Changes are found by polling the files' modification times and sizes twice a second, not by filesystem
events: polling works everywhere, including WSL's /mnt/c and network mounts, where events never arrive.
The checks run in their own process group, so Ctrl-C in the terminal reaches only this watcher, which
then interrupts them itself (workshop.progress.stop_checks): pytest stops the servers it started, and
nothing is printed but one line.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workshop.progress import (
    RUN_MARKER,
    CheckResults,
    checks_environment,
    pytest_command,
    read_report,
    stop_checks,
)
from workshop.starters import folder_files
from workshop.steps import ROOT, STEPS, Step

POLL_SECONDS = 0.5


def is_editor_scratch(name: str) -> bool:
    """Files editors write beside the real one while saving (vim's .swp and 4913, emacs's #file#, backups~)."""
    return (
        name.startswith((".", "#"))
        or name.endswith(("~", ".swp", ".swx"))
        or name == "4913"
    )


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's (modification time, size): a change to either is a change."""
    files = {}
    for name, path in folder_files(folder).items():
        if any(is_editor_scratch(part) for part in Path(name).parts):
            continue
        try:
            status = path.stat()
        except FileNotFoundError:
            continue  # deleted between listing and looking
        files[name] = (status.st_mtime_ns, status.st_size)
    return files


def changed_names(before: dict, after: dict) -> list[str]:
    return sorted(
        name for name in set(before) | set(after) if before.get(name) != after.get(name)
    )


def wait_for_change(folder: Path, last: dict) -> dict:
    """Poll until folder differs from `last` and has stopped changing (editors save in several writes)."""
    while True:
        time.sleep(POLL_SECONDS)
        current = snapshot(folder)
        if current != last:
            while True:
                time.sleep(POLL_SECONDS)
                settled = snapshot(folder)
                if settled == current:
                    return current
                current = settled


def run_checks_showing_output(the_step: Step) -> CheckResults:
    """pytest steps/stepN, its output passed on as it comes (each check's dot too), and its results counted."""
    colour = ("--color=yes",) if sys.stdout.isatty() else ()
    run_id = f"watch-{os.getpid()}-{time.monotonic_ns()}"
    environment = {**checks_environment(), "PYTHONUNBUFFERED": "1", RUN_MARKER: run_id}
    with tempfile.TemporaryDirectory(prefix="workshop-watch-") as scratch:
        report = Path(scratch) / "report.xml"
        checks = subprocess.Popen(
            pytest_command(the_step, report, ("-q", *colour)),
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        tail = b""  # the end of the output, to explain a run that could not even start
        try:
            assert checks.stdout is not None  # a pipe: stdout=PIPE above
            while chunk := os.read(checks.stdout.fileno(), 4096):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                tail = (tail + chunk)[-2000:]
            checks.wait()
        except KeyboardInterrupt:
            stop_checks(checks, run_id)
            raise
        return read_report(
            the_step, report, checks.returncode, tail.decode(errors="replace")
        )


def summary(results: CheckResults) -> str:
    the_step = results.step
    if results.problem:
        return f"[watch] {the_step.label}: {results.problem}."
    line = f"[watch] {the_step.label}: {results.passed} of {results.total} checks pass."
    if results.done:
        line += f" {the_step.label.capitalize()} is done!"
        following = [s for s in STEPS if s.builds_on == the_step.key]
        if following:
            line += f" On to {following[0].label}: make watch {following[0].key}"
    return line


def watch(the_step: Step) -> None:
    folder = the_step.starter_dir
    where = folder.relative_to(ROOT)
    print(
        f"[watch] Watching {where}: its checks run now, and again each time you save a file there. "
        "Ctrl-C stops.",
        flush=True,
    )
    files = snapshot(folder)
    while True:
        results = run_checks_showing_output(the_step)
        print(summary(results), flush=True)
        checked, files = files, snapshot(folder)
        if (
            files == checked
        ):  # nothing was saved while the checks ran: wait for the next save
            files = wait_for_change(folder, checked)
        print(
            f"\n[watch] {time.strftime('%H:%M:%S')} changed: {', '.join(changed_names(checked, files))}; "
            "running the checks again.\n",
            flush=True,
        )


def run(the_step: Step) -> int:
    """`python -m workshop watch STEP`: until Ctrl-C, which ends it with one line."""
    try:
        watch(the_step)
    except KeyboardInterrupt:
        print(f"\n[watch] Stopped watching steps/{the_step.folder}.", flush=True)
    return 0
