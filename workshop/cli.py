"""One command for everything a learner or an instructor does: `python -m workshop ...`.

    python -m workshop step 4          run your steps/step4 (Ctrl-C stops it)
    python -m workshop check room      grade your steps/room
    python -m workshop --help          every command; `python -m workshop CMD --help` for one

On Windows, type `py -m workshop ...`; with make, `make step 4` runs the same. It runs on
any Python 3 far enough to say what to install: everything but `setup` and `doctor`
needs 3.12, and runs in the workshop's .venv (made by `setup` on first use).

Exit status, for every command:
    0    done (the checks passed, the server was stopped with Ctrl-C)
    1    the command ran and found a problem (a check failed, a port was busy)
    2    the command itself was wrong (an unknown step, a bad option)
    130  interrupted by Ctrl-C before it finished (as shells report it)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
MINIMUM_PYTHON = (3, 12)
REQUIREMENTS = ROOT / "requirements.txt"
# Written once the pins are installed: newer than requirements.txt, nothing to install.
INSTALLED_MARKER = VENV / ".installed"
OK, PROBLEM, USAGE, INTERRUPTED = 0, 1, 2, 130


def venv_python(venv: Path = VENV) -> Path:
    """The .venv's Python: bin/python, or Scripts\\python.exe on Windows."""
    windows = venv / "Scripts" / "python.exe"
    return windows if os.name == "nt" or windows.exists() else venv / "bin" / "python"


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def needs_install() -> bool:
    marker = INSTALLED_MARKER
    return not marker.exists() or marker.stat().st_mtime < REQUIREMENTS.stat().st_mtime


def workshop_command(command: str) -> str:
    """How a learner on this system types a workshop command (`make doctor`, or without
    make, as on Windows, `py -m workshop doctor`)."""
    if os.name == "nt" or not shutil.which("make"):
        return f"{'py' if os.name == 'nt' else 'python3'} -m workshop {command}"
    return f"make {command}"


# --- setup -----------------------------------------------------------------------------


def python_version(python: str | Path | None = None) -> tuple[int, ...] | None:
    """The version of the Python that the command `python` runs ("py -3.12" on Windows;
    None: this one), or None if it does not run."""
    if python is None:
        return tuple(sys.version_info[:3])
    probe = "import sys; print(*sys.version_info[:3])"
    command = python.split() if isinstance(python, str) else [str(python)]
    try:
        answer = subprocess.run(
            [*command, "-c", probe], capture_output=True, text=True, timeout=60
        )
        return (
            tuple(map(int, answer.stdout.split())) if answer.returncode == 0 else None
        )
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def is_modern(python: str | Path) -> bool:
    return (python_version(python) or (0,)) >= MINIMUM_PYTHON


def modern_python() -> str | None:
    """A command on this machine that runs Python 3.12 or newer, if there is one."""
    if os.name == "nt":
        candidates = ["py -3.13", "py -3.12", "py -3"]
    else:
        candidates = ["python3.13", "python3.12", "python3"]
    return next((candidate for candidate in candidates if is_modern(candidate)), None)


def get_python_advice() -> str:
    """What a learner whose Python is too old does next, on their system."""
    found = modern_python()
    if found:
        return (
            f"Python 3.12 or newer is already installed here as `{found}`: "
            f"run {found} -m workshop setup"
        )
    if os.name == "nt":
        install = (
            "install Python 3.12 or newer from python.org/downloads/windows (tick "
            '"Add python.exe to PATH"), or: winget install Python.Python.3.12'
        )
        then = "py -3.12 -m workshop setup"
    elif sys.platform == "darwin":
        install = (
            "install Python 3.12 or newer: brew install python@3.12, or the installer "
            "from python.org/downloads/macos"
        )
        then = "python3.12 -m workshop setup"
    else:
        install = (
            "install Python 3.12 or newer: sudo apt install python3.12 python3.12-venv "
            "(Debian 13, Ubuntu 24.04), or on any Linux: uv python install 3.12, or pyenv "
            "install 3.12"
        )
        then = "python3.12 -m workshop setup"
    return f"{install}. Then, in a new terminal, in this folder: {then}"


def too_old() -> int:
    found = ".".join(map(str, sys.version_info[:3]))
    print(
        f"This is Python {found} ({sys.executable}); the workshop needs 3.12 or newer."
    )
    advice = get_python_advice()
    print(advice[0].upper() + advice[1:])
    return PROBLEM


def setup(_args=None) -> int:
    """Create .venv with this Python (3.12 or newer) and install the pinned packages."""
    if sys.version_info < MINIMUM_PYTHON:
        return too_old()
    python = venv_python()
    if python.exists() and not is_modern(python):
        print("Replacing .venv: its Python is older than 3.12, or no longer runs.")
        shutil.rmtree(VENV)
    if not python.exists():
        print(f"Creating .venv with Python {sys.version.split()[0]} ...")
        import venv

        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as problem:
            print(
                f"Could not create .venv ({problem}). On Debian and Ubuntu, the venv "
                f"module is a package of its own: sudo apt install "
                f"python3.{sys.version_info[1]}-venv"
            )
            return PROBLEM
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
            "pip could not install the pins: its message is above. "
            f"`{workshop_command('doctor')}` checks the rest of this machine."
        )
        return PROBLEM
    INSTALLED_MARKER.touch()
    print(
        f"Ready. Next: {workshop_command('solution 7')} (the finished chat), "
        "or see README.md."
    )
    return OK


# --- running other programs ------------------------------------------------------------


def run_foreground(command: list[str], env: dict | None = None) -> int:
    """Run a command as if typed in this terminal: a Ctrl-C reaches it too, and we wait for
    it to finish; if it dies of a signal, so do we, as make and shells expect.

    Not by ignoring SIGINT while it runs: a program started with SIGINT ignored keeps it
    ignored (Python then raises no KeyboardInterrupt), and so would every program it starts.
    """
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    while True:
        try:
            status = process.wait()
            break
        except KeyboardInterrupt:
            continue  # the same Ctrl-C reached the command: it decides how to stop
    if status < 0 and os.name != "nt":
        if -status not in (signal.SIGKILL, signal.SIGSTOP):  # those have no handler
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


# pytest's exit statuses: 1 some check failed, 2 interrupted, 3 internal error, 4 usage
# error, 5 no check collected.
PYTEST_STATUS = {0: OK, 1: PROBLEM, 2: INTERRUPTED, 3: PROBLEM, 4: USAGE, 5: PROBLEM}


def _pytest(arguments: list[str]) -> int:
    # The checks start servers of their own: never this make's jobserver or level.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    status = run_foreground([sys.executable, "-m", "pytest", *arguments], env)
    return PYTEST_STATUS.get(status, PROBLEM)


# --- the commands ----------------------------------------------------------------------


def _step(key: str):
    """The step or chapter named on the command line, or exit 2 with the list of them."""
    from workshop.steps import step

    try:
        return step(key)
    except ValueError as problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(USAGE)


def _serve(folder: Path, args) -> int:
    from workshop import serve

    return serve.main([str(folder), "--host", args.host, "--port", str(args.port)])


def cmd_step(args) -> int:
    return _serve(_step(args.key).starter_dir, args)


def cmd_solution(args) -> int:
    return _serve(_step(args.key).solution_dir, args)


def cmd_check(args) -> int:
    folder = _step(args.key).starter_dir.relative_to(ROOT)
    return _pytest([str(folder), *args.passed_on])


def cmd_test(args) -> int:
    return _pytest(["tests", *_in_parallel(args.passed_on), *args.passed_on])


# The repository's tests often wait for servers and browsers: three pytest workers
# (pytest-xdist, in requirements-dev.txt) keep two CPUs busier than two workers do
# (docs/performance.md#make-test). WORKSHOP_TEST_WORKERS=0: one.
TEST_WORKERS = os.environ.get("WORKSHOP_TEST_WORKERS", "3")


def _in_parallel(passed_on: list[str]) -> list[str]:
    """pytest-xdist's options for `make test`, where it is installed and not told
    otherwise: each test goes to the next free worker, but the files that share a
    costly fixture (the mistakes gate, the guide) run whole on one (tests/conftest.py)."""
    told = any(
        a.startswith(("-n", "--numprocesses", "--dist")) or a.endswith("no:xdist")
        for a in passed_on
    )
    if told or TEST_WORKERS in ("", "0", "1"):
        return []
    if importlib.util.find_spec("xdist") is None:
        return []
    return ["-n", TEST_WORKERS, "--dist", "load"]


def cmd_progress(args) -> int:
    from workshop import progress

    return progress.main(["--fresh"] if args.fresh else [])


def cmd_watch(args) -> int:
    from workshop import watch

    return watch.run(_step(args.key))


def cmd_hint(args) -> int:
    from workshop import hints

    return hints.show(_step(args.key), again=args.again, every=args.all)


def cmd_diff(args) -> int:
    from workshop import diff

    return diff.show(_step(args.key))


def cmd_reset(args) -> int:
    from workshop import restore

    return restore.run("reset", _step(args.key))


def cmd_solve(args) -> int:
    from workshop import restore

    return restore.run("solve", _step(args.key))


def cmd_doctor(args) -> int:
    if sys.version_info < MINIMUM_PYTHON:
        return too_old()
    from workshop import doctor

    return doctor.report(args.port, args.guide_port)


def cmd_docs(args) -> int:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = ["build", "--strict"] if args.build else ["serve"]
    status = run_foreground([sys.executable, "-m", "mkdocs", *command], env)
    return OK if status == 0 else PROBLEM


def cmd_demo(args) -> int:
    from workshop import demo

    key = [_step(args.key).key] if args.key else []  # else the finished chat
    return demo.main([*key, "--port", str(args.port), "--host", args.host])


# --- the instructor's cockpit and the learners' sharing (workshop/cockpit/, share.py) ---


def cmd_dashboard(args) -> int:
    from workshop.cockpit import server

    options = ["--port", str(args.port), "--host", args.host]
    for name in ("chat", "join_url", "away_minutes"):
        if getattr(args, name) is not None:
            options += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return server.main(options)


def cmd_share(args) -> int:
    from workshop import share

    return share.main(
        [
            *(["--host", args.host] if args.host else []),
            *(["--name", args.name] if args.name else []),
            *(["--off"] if args.off else []),
        ]
    )


def cmd_plan(args) -> int:
    from workshop import plan

    return plan.main([str(args.minutes)])


def cmd_bots(args) -> int:
    from workshop import bots

    options = ["--count", str(args.count), "--url", args.url, "--pace", str(args.pace)]
    options += ["--arrival", str(args.arrival), *(["--stay"] if args.stay else [])]
    return bots.run(options)


def cmd_bench(args) -> int:
    bench = [sys.executable, str(ROOT / "bench" / "run.py")]
    participants = ["--participants", str(args.participants)]
    if args.history:
        participants.append("--history")
    if args.processes:  # one room over Redis (scale.md#measured)
        participants += ["--processes", str(args.processes)]
    status = run_foreground([*bench, *participants, *args.passed_on])
    return status if status in (OK, USAGE) else PROBLEM


def _doctor_in_venv() -> bool:
    """Whether doctor should run in a .venv that works, this Python being another."""
    if os.environ.get("WORKSHOP_NO_VENV") or in_venv():
        return False
    return venv_python().exists() and is_modern(venv_python())


def cmd_lint(args) -> int:
    """What CI runs before the tests: ruff (lint and format) and mypy."""
    checks = [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ]
    failed = []
    for check in checks:
        try:
            status = subprocess.run([sys.executable, "-m", *check], cwd=ROOT).returncode
        except KeyboardInterrupt:
            return INTERRUPTED
        if status != 0:
            failed.append(" ".join(check))
    if failed:
        development = ROOT / "requirements-dev.txt"
        print(
            f"Not clean: {', '.join(failed)}. (The tools come with: {venv_python()} -m "
            f"pip install -r {development.name}; `ruff format .` fixes the layout.)",
            file=sys.stderr,
        )
        return PROBLEM
    return OK


# --- the parser ------------------------------------------------------------------------

# Commands that pass options they do not know on: to pytest, or to bench/run.py.
PASSING_ON = {
    "check": "pytest",
    "test": "pytest",
    "bench": "bench/run.py (python -m workshop bench -- --help lists them)",
}


def _keys_text() -> str:
    try:
        from workshop.steps import keys_text

        return keys_text()
    except Exception:  # too old a Python to read course.toml: setup says so
        return "listed in workshop/course.toml"


def parser() -> argparse.ArgumentParser:
    keys = _keys_text()
    main_parser = argparse.ArgumentParser(
        prog="python -m workshop",
        description="The Cello chat workshop's commands (make TARGET runs the same).",
        epilog=f"STEP: a step or chapter, {keys}. On Windows, type py -m workshop "
        "instead. Exit status: 0 done, 1 a problem found (a check failed), 2 a wrong "
        "command, 130 Ctrl-C.",
    )
    commands = main_parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True
    )
    port = int(os.environ.get("PORT") or 8000)
    host = os.environ.get("HOST") or "127.0.0.1"

    def command(name, function, summary, key=False, serving=False):
        sub = commands.add_parser(name, help=summary, description=summary)
        if name in PASSING_ON:
            sub.epilog = f"Other options are passed on to {PASSING_ON[name]}."
        if key:
            sub.add_argument("key", metavar="STEP", help=f"a step or chapter: {keys}")
        if serving:
            sub.add_argument(
                "--port", type=int, default=port, help="default: 8000, or PORT"
            )
            sub.add_argument("--host", default=host, help="default: 127.0.0.1, or HOST")
        sub.set_defaults(run=function)
        return sub

    where = f"http://{host}:{port}"
    command(
        "step",
        cmd_step,
        f"run your steps/STEP at {where} (Ctrl-C stops it)",
        key=True,
        serving=True,
    )
    command(
        "solution",
        cmd_solution,
        "run the finished solutions/STEP the same way",
        key=True,
        serving=True,
    )
    command("check", cmd_check, "self-grade your STEP (pytest steps/STEP)", key=True)
    command("test", cmd_test, "the repository's whole test suite (what CI runs)")
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
    sub.add_argument("--all", action="store_true", help="every hint seen so far")
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
    sub = command(
        "doctor",
        cmd_doctor,
        "check this machine for the workshop, with a fix for each problem",
    )
    sub.add_argument("--port", type=int, default=port, help="the chat's port")
    sub.add_argument("--guide-port", type=int, default=8001, help="the guide's port")
    sub = command(
        "docs", cmd_docs, "serve the guide at http://127.0.0.1:8001 (live reload)"
    )
    sub.add_argument(
        "--build", action="store_true", help="build site/ strictly instead"
    )
    sub = command(
        "demo", cmd_demo, "serve a checkpoint to the room, on every interface"
    )
    sub.add_argument(
        "key",
        metavar="STEP",
        nargs="?",
        help=f"a step or chapter: {keys} (default: the finished chat)",
    )
    sub.add_argument("--port", type=int, default=port, help="default: 8000, or PORT")
    sub.add_argument("--host", default="0.0.0.0", help="default: every interface")
    sub = command(
        "dashboard",
        cmd_dashboard,
        "the instructor's cockpit: projector view and the class's progress, live",
    )
    sub.add_argument(
        "--port", type=int, default=int(os.environ.get("COCKPIT_PORT", 8002))
    )
    sub.add_argument(
        "--host", default="0.0.0.0", help="where reports arrive (default: everywhere)"
    )
    sub.add_argument("--chat", help="the chat to follow (default: 127.0.0.1:$PORT)")
    sub.add_argument("--join-url", help="the address the room types (default: guessed)")
    sub.add_argument(
        "--away-minutes", type=float, help="silent this long: away (default: 15)"
    )
    sub = command(
        "share",
        cmd_share,
        "share your check results with the instructor's dashboard (opt-in, LAN only)",
    )
    sub.add_argument(
        "--host", help="the instructor's address, as their screen shows it"
    )
    sub.add_argument("--name", help="your name on their dashboard")
    sub.add_argument("--off", action="store_true", help="stop sharing")
    sub = command("plan", cmd_plan, "the timed plan of a session (90 or 180 minutes)")
    sub.add_argument("minutes", type=int, nargs="?", default=90)
    sub = command("bots", cmd_bots, "simulated participants who join the chat and talk")
    sub.add_argument("--count", type=int, default=30, help="how many (default 30)")
    sub.add_argument("--url", default=f"http://127.0.0.1:{port}", help="the chat")
    sub.add_argument(
        "--pace", type=float, default=15, help="seconds between a bot's messages"
    )
    sub.add_argument(
        "--arrival", type=float, default=10, help="they join over this many seconds"
    )
    sub.add_argument("--stay", action="store_true", help="they never step out")
    sub = command(
        "bench", cmd_bench, "the finished chat against a reference server, one run"
    )
    sub.add_argument("--participants", type=int, default=1000, help="default 1000")
    sub.add_argument(
        "--history",
        action="store_true",
        help="the room chat without and with the chapter history (docs/history.md)",
    )
    sub.add_argument(
        "--processes",
        type=int,
        default=0,
        help="one room over Redis: 1 process, 1 with Redis, N with Redis",
    )
    command("setup", setup, "create .venv and install the pinned packages")
    command("lint", cmd_lint, "for maintainers: ruff check, ruff format --check, mypy")
    return main_parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    the_parser = parser()
    try:
        args, unknown = the_parser.parse_known_args(argv)
        if unknown and args.command not in PASSING_ON:
            the_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as leaving:  # --help (0), or a wrong command (2)
        return leaving.code if isinstance(leaving.code, int) else USAGE
    args.passed_on = [part for part in unknown if part != "--"]
    if args.run is cmd_doctor and _doctor_in_venv():
        # Where the pins are: as `make doctor` runs it.
        return run_foreground([str(venv_python()), "-m", "workshop", *argv])
    if args.run not in (setup, cmd_doctor):
        if sys.version_info < MINIMUM_PYTHON and not venv_python().exists():
            return too_old()
        rerun = ensure_venv(argv)
        if rerun is not None:
            return rerun
    try:
        return args.run(args)
    except SystemExit as leaving:
        return leaving.code if isinstance(leaving.code, int) else USAGE
    except KeyboardInterrupt:
        return INTERRUPTED
