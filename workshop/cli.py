"""One command for everything a learner or an instructor does: `python -m workshop ...`.

    python -m workshop step 4          run your steps/step4 (Ctrl-C stops it)
    python -m workshop check room      grade your steps/room
    python -m workshop --help          every command; `python -m workshop CMD --help` for one

It runs on any Python 3 far enough to say what to install: everything but `setup` and
`doctor` needs 3.12, and runs in the workshop's .venv (made by `setup` on first use).
Exit status: 0 done, 1 the command ran and found a problem (a check failed, a port was
busy), 2 the command itself was wrong (an unknown step, a bad option).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
MINIMUM_PYTHON = (3, 12)
REQUIREMENTS = ROOT / "requirements.txt"
# Written once the pins are installed (as make does)
INSTALLED_MARKER = VENV / ".installed"
GET_PYTHON = (
    "Install Python 3.12 or newer: python.org/downloads (Windows, macOS), or your package "
    "manager (apt install python3.12, brew install python@3.12), pyenv or uv. Then run: "
    "py -3.12 -m workshop setup (Windows) or python3.12 -m workshop setup."
)


def venv_python() -> Path:
    """The .venv's Python: bin/python, or Scripts\\python.exe on Windows."""
    windows = VENV / "Scripts" / "python.exe"
    return windows if os.name == "nt" or windows.exists() else VENV / "bin" / "python"


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def needs_install() -> bool:
    marker = INSTALLED_MARKER
    return not marker.exists() or marker.stat().st_mtime < REQUIREMENTS.stat().st_mtime


# --- setup -----------------------------------------------------------------------------


def setup(_args=None) -> int:
    """Create .venv with this Python (3.12 or newer) and install the pinned packages."""
    if sys.version_info < MINIMUM_PYTHON:
        found = ".".join(map(str, sys.version_info[:3]))
        print(
            f"This is Python {found} ({sys.executable}); the workshop needs 3.12 or newer."
        )
        print(GET_PYTHON)
        return 1
    python = venv_python()
    if python.exists() and not _runs_modern_python(python):
        print("Replacing .venv: it was made with an older Python.")
        import shutil

        shutil.rmtree(VENV)
    if not python.exists():
        print(f"Creating .venv with Python {sys.version.split()[0]} ...")
        import venv

        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing the pinned packages (requirements.txt) ...")
    installed = subprocess.run(
        [
            str(venv_python()),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        cwd=ROOT,
    )
    if installed.returncode != 0:
        print(
            "pip could not install the pins: its message is above. `python -m workshop "
            "doctor` checks the rest of this machine."
        )
        return 1
    INSTALLED_MARKER.touch()
    print(
        "Ready. Next: python -m workshop solution 7 (the finished chat), or see README.md."
    )
    return 0


def _runs_modern_python(python: Path) -> bool:
    probe = subprocess.run(
        [str(python), "-c", "import sys; sys.exit(sys.version_info < (3, 12))"],
        capture_output=True,
    )
    return probe.returncode == 0


def run_foreground(command: list[str], env: dict | None = None) -> int:
    """Run a command as if typed in this terminal: Ctrl-C reaches it (not us), and if it
    dies of a signal, so do we, as make and shells expect of an interrupted command."""
    # A handler that does nothing, not SIG_IGN: an ignored SIGINT is inherited, and the
    # command (pytest, and the demos and bots the checks start) would never see Ctrl-C.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        status = subprocess.run(command, cwd=ROOT, env=env).returncode
    finally:
        signal.signal(signal.SIGINT, previous)
    if status < 0 and os.name != "nt":
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


def ensure_venv(argv: list[str]) -> int | None:
    """Run this command in .venv, setting it up first if it is missing or out of date.
    None: go on in this process. Otherwise: the exit status of the run in .venv."""
    if os.environ.get("WORKSHOP_NO_VENV"):
        return None
    if not venv_python().exists() or needs_install():
        status = setup()
        if status:
            return status
    if in_venv():
        return None
    return run_foreground([str(venv_python()), "-m", "workshop", *argv])


# --- the commands ----------------------------------------------------------------------


def _step(key: str):
    """The step or chapter named on the command line, or exit 2 with the list of them."""
    from workshop.steps import step

    try:
        return step(key)
    except ValueError as problem:
        raise SystemExit(_usage_error(str(problem)))


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _serve(folder: Path, args) -> int:
    from workshop import serve

    return serve.main([str(folder), "--host", args.host, "--port", str(args.port)])


def cmd_step(args) -> int:
    return _serve(_step(args.key).starter_dir, args)


def cmd_solution(args) -> int:
    return _serve(_step(args.key).solution_dir, args)


def _pytest(arguments: list[str]) -> int:
    # The checks start servers of their own: never this make's jobserver or level.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    return run_foreground([sys.executable, "-m", "pytest", *arguments], env)


def cmd_check(args) -> int:
    folder = _step(args.key).starter_dir.relative_to(ROOT)
    return _pytest([str(folder), *args.pytest_args])


def cmd_test(args) -> int:
    return _pytest(["tests", *args.pytest_args])


def cmd_progress(args) -> int:
    from workshop import progress

    return progress.main(["--fresh"] if args.fresh else [])


def cmd_watch(args) -> int:
    from workshop import watch

    return watch.main([_step(args.key).key])


def cmd_hint(args) -> int:
    from workshop import hints

    return hints.main([_step(args.key).key, *(["--again"] if args.again else [])])


def cmd_diff(args) -> int:
    from workshop import diff

    return diff.main([_step(args.key).key])


def cmd_reset(args) -> int:
    from workshop import restore

    return restore.main(["reset", _step(args.key).key])


def cmd_solve(args) -> int:
    from workshop import restore

    return restore.main(["solve", _step(args.key).key])


def cmd_doctor(args) -> int:
    from workshop import doctor

    return doctor.main(["--port", str(args.port)])


def cmd_docs(args) -> int:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = ["build", "--strict"] if args.build else ["serve"]
    return run_foreground([sys.executable, "-m", "mkdocs", *command], env)


def cmd_demo(args) -> int:
    from workshop import demo

    return demo.main(
        ["--port", str(args.port), "--app", str(_step(args.key).solution_dir)]
    )


def cmd_bots(args) -> int:
    from workshop import bots

    return bots.run(["--count", str(args.count), "--url", args.url])


def cmd_bench(args) -> int:
    command = [
        sys.executable,
        str(ROOT / "bench" / "run.py"),
        "--participants",
        str(args.participants),
    ]
    return run_foreground(command)


# --- the parser ------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="python -m workshop",
        description="The Cello chat workshop's commands (make TARGET runs the same).",
        epilog="Steps are 1 to 7; chapters after them have names (python -m workshop "
        "progress lists them all). On Windows, type py -m workshop instead.",
    )
    commands = main_parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True
    )

    def command(name, function, summary, key=False, port=False):
        sub = commands.add_parser(name, help=summary, description=summary)
        if key:
            sub.add_argument(
                "key", metavar="STEP", help="a step number (1-7) or a chapter name"
            )
        if port:
            sub.add_argument(
                "--port", type=int, default=int(os.environ.get("PORT", 8000))
            )
        sub.set_defaults(run=function)
        return sub

    for name, function, what in (
        (
            "step",
            cmd_step,
            "run your steps/STEP at http://127.0.0.1:8000 (Ctrl-C stops it)",
        ),
        ("solution", cmd_solution, "run the finished solutions/STEP the same way"),
    ):
        sub = command(name, function, what, key=True, port=True)
        sub.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    sub = command(
        "check", cmd_check, "self-grade your STEP (pytest steps/STEP)", key=True
    )
    sub.add_argument(
        "pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest"
    )
    sub = command("test", cmd_test, "the repository's whole test suite (what CI runs)")
    sub.add_argument(
        "pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest"
    )
    sub = command(
        "progress", cmd_progress, "every step: passed or not yet, and what is next"
    )
    sub.add_argument(
        "--fresh", action="store_true", help="rerun steps that passed unchanged"
    )
    command(
        "watch", cmd_watch, "rerun STEP's checks on each save (Ctrl-C stops)", key=True
    )
    sub = command("hint", cmd_hint, "a hint for STEP, one more each time", key=True)
    sub.add_argument("--again", action="store_true", help="start the hints over")
    command(
        "diff",
        cmd_diff,
        "your steps/STEP against the finished solutions/STEP",
        key=True,
    )
    command(
        "reset",
        cmd_reset,
        "put steps/STEP back to its starter (yours is backed up)",
        key=True,
    )
    command(
        "solve",
        cmd_solve,
        "put the finished STEP in steps/STEP (yours is backed up)",
        key=True,
    )
    command(
        "doctor",
        cmd_doctor,
        "check this machine for the workshop, with a fix for each problem",
        port=True,
    )
    sub = command(
        "docs", cmd_docs, "serve the guide at http://127.0.0.1:8001 (live reload)"
    )
    sub.add_argument(
        "--build", action="store_true", help="build site/ strictly instead"
    )
    sub = command(
        "demo",
        cmd_demo,
        "serve a checkpoint to the room, on every interface",
        port=True,
    )
    sub.add_argument(
        "key", metavar="STEP", nargs="?", default="room", help="default: room"
    )
    sub = command("bots", cmd_bots, "simulated participants who join the chat and talk")
    sub.add_argument("--count", type=int, default=30)
    sub.add_argument(
        "--url", default=f"http://127.0.0.1:{os.environ.get('PORT', 8000)}"
    )
    sub = command(
        "bench", cmd_bench, "the finished chat against a reference server, one run"
    )
    sub.add_argument("--participants", type=int, default=1000)
    command("setup", setup, "create .venv and install the pinned packages")
    return main_parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.run not in (setup, cmd_doctor):
        if sys.version_info < MINIMUM_PYTHON and not venv_python().exists():
            print(
                f"This is Python {sys.version.split()[0]}; the workshop needs 3.12 or newer."
            )
            print(GET_PYTHON)
            return 1
        rerun = ensure_venv(argv)
        if rerun is not None:
            return rerun
    try:
        return args.run(args)
    except SystemExit as leaving:
        return leaving.code if isinstance(leaving.code, int) else 2
