"""Is this machine ready for the workshop? Each problem comes with its fix.  `make doctor`

    python -m workshop.doctor [--port 8000] [--guide-port 8001]

Checks Python (3.12 or newer), the .venv, Cello 1.4.1 and the other pins of requirements.txt, whether the
chat's and the guide's ports are free (and who holds them), a browser for the browser checks, and git
(for `make reset`). Exit status 1 when something blocks the workshop (FAIL); a WARN does not.

This file must run on an old Python too, far enough to say that it is too old: hence the __future__
import, and workshop.ports (which needs 3.10) imported only once the version is known to be good.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
MINIMUM_PYTHON = (3, 12)
# The packages the chat and its checks run on: a different version of one of these can change behaviour
# the checks rely on. Any other pin that differs is only a warning.
ESSENTIAL_PACKAGES = ("cello-framework", "websockets", "pytest")
# The browser checks' own search (workshop/browser.py's find_chromium): CHROMIUM=, then these on PATH, then
# Playwright's download. Repeated here because that module needs pytest and Playwright to import.
SYSTEM_CHROMIUM = ("chromium-headless-shell", "chromium", "chromium-browser")


@dataclass
class Finding:
    level: str  # "ok", "WARN" (works, with a caveat) or "FAIL" (blocks the workshop)
    what: str
    fix: str = ""


def python_version(python=None) -> tuple[int, int, int] | None:
    """The version of the interpreter at `python` (None: this one), or None if it does not run."""
    if python is None:
        return tuple(sys.version_info[:3])
    try:
        answer = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (
        tuple(int(part) for part in answer.stdout.split())
        if answer.returncode == 0
        else None
    )


def dotted(version) -> str:
    return ".".join(map(str, version))


def check_python() -> Finding:
    version = python_version()
    if version < MINIMUM_PYTHON:
        return Finding(
            "FAIL",
            f"Python {dotted(version)} ({sys.executable}) is too old: the workshop needs 3.12 or newer",
            "install Python 3.12+ (python.org, your package manager, pyenv or uv), then run: "
            "make setup PYTHON=/path/to/python3.12",
        )
    return Finding("ok", f"Python {dotted(version)} ({sys.executable})")


def running_in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def check_venv() -> Finding:
    python = VENV / "bin" / "python"
    if not VENV.is_dir():
        return Finding(
            "FAIL",
            "there is no .venv yet (the workshop's virtual environment)",
            "make setup",
        )
    version = python_version(python)
    if version is None:
        return Finding(
            "FAIL",
            f"{python} does not run (was the Python that made .venv removed or upgraded?)",
            "rm -rf .venv && make setup",
        )
    if version < MINIMUM_PYTHON:
        too_old = (
            f".venv was made with Python {dotted(version)}: it needs 3.12 or newer"
        )
        return Finding("FAIL", too_old, "rm -rf .venv && make setup")
    if not running_in_venv():
        return Finding(
            "WARN",
            f".venv is fine, but this is {sys.executable}, not .venv's Python, so the pins were not checked",
            "source .venv/bin/activate (or run make doctor, which uses .venv)",
        )
    return Finding("ok", f".venv (Python {dotted(version)}) is the Python in use")


def read_pins(requirements: Path) -> dict[str, str]:
    pins = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    return pins


def check_pins() -> list[Finding]:
    """Cello and every other pin of requirements.txt against what this Python has installed."""
    from importlib.metadata import PackageNotFoundError, version

    fix = f"{VENV / 'bin' / 'python'} -m pip install -r requirements.txt"
    findings, other_differences = [], []
    pins = read_pins(ROOT / "requirements.txt")
    for name, pinned in pins.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        label = "Cello" if name == "cello-framework" else name
        if name in ESSENTIAL_PACKAGES:
            if installed == pinned:
                findings.append(Finding("ok", f"{label} {installed} (as pinned)"))
            else:
                state = (
                    f"{installed} is installed" if installed else "it is not installed"
                )
                findings.append(
                    Finding("FAIL", f"{label} must be {pinned}, but {state}", fix)
                )
        elif installed != pinned:
            other_differences.append(
                f"{name} {installed or 'missing'} (pinned {pinned})"
            )
    others = len(pins) - sum(name in pins for name in ESSENTIAL_PACKAGES)
    if other_differences:
        findings.append(
            Finding("WARN", "pins that differ: " + ", ".join(other_differences), fix)
        )
    else:
        findings.append(
            Finding("ok", f"the {others} other pins of requirements.txt match")
        )
    return findings


def check_port(
    port: int, purpose: str, blocking: bool, other_ports: tuple[int, ...] = ()
) -> Finding:
    from workshop.ports import port_is_free, who_listens

    if port_is_free(port):
        return Finding("ok", f"port {port} ({purpose}) is free")
    holder = who_listens(port)
    held_by = (
        f", held by {holder}"
        if holder
        else " (by a process of another user, or one /proc does not show)"
    )
    pid = holder.split(":")[0].removeprefix("pid ") if holder else "PID"
    fix = f"stop that program (Ctrl-C in its terminal, or: kill {pid})"
    if blocking:
        # Suggest a port that is free now and that no other part of the workshop uses.
        spare = next(
            (
                p
                for p in range(port + 1, port + 100)
                if p not in other_ports and port_is_free(p)
            ),
            None,
        )
        if spare:
            fix += f", or run the chat on another port: PORT={spare} make step N"
    return Finding(
        "FAIL" if blocking else "WARN",
        f"port {port} ({purpose}) is in use{held_by}",
        fix,
    )


def find_browser() -> str | None:
    """Chromium for the browser checks: the one CHROMIUM names, the system's, or one Playwright downloaded."""
    if os.environ.get("CHROMIUM"):
        return (
            os.environ["CHROMIUM"]
            if os.access(os.environ["CHROMIUM"], os.X_OK)
            else None
        )
    for candidate in SYSTEM_CHROMIUM:
        found = shutil.which(candidate)
        if found:
            return found
    cache = os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or str(
        Path.home() / ".cache" / "ms-playwright"
    )
    for pattern in (
        "chromium-*/chrome-linux*/chrome",
        "chromium_headless_shell-*/chrome-linux*/headless_shell",
        "chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
    ):
        for found in sorted(glob.glob(os.path.join(cache, pattern)), reverse=True):
            if os.access(found, os.X_OK):
                return found
    return None


def check_browser() -> Finding:
    browser = find_browser()
    if browser:
        return Finding("ok", f"a browser for the browser checks: {browser}")
    if os.environ.get("CHROMIUM"):
        return Finding(
            "WARN",
            f"CHROMIUM={os.environ['CHROMIUM']} is not a program: the browser checks cannot run",
            "point CHROMIUM at a Chromium or Chrome executable, or unset it",
        )
    return Finding(
        "WARN",
        "no Chromium found (chromium on PATH, or Playwright's): the browser checks will be skipped",
        "sudo apt-get install chromium (Debian, Ubuntu, WSL), or: .venv/bin/python -m playwright install chromium",
    )


def check_redis() -> Finding:
    """The scale chapter's checks and `make step scale` start a redis-server of their own."""
    found = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if found:
        return Finding("ok", f"redis-server for the scale chapter: {found}")
    return Finding(
        "WARN",
        "no redis-server: the scale chapter's checks will be skipped",
        "sudo apt-get install redis-server (Debian, Ubuntu, WSL), or: brew install redis (macOS)",
    )


def check_git() -> Finding:
    try:
        inside = (
            subprocess.run(
                ["git", "rev-parse", "--is-inside-work-tree"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            ).stdout.strip()
            == "true"
        )
    except OSError:
        return Finding(
            "WARN",
            "git is not installed: make reset cannot find the original starters",
            "install git",
        )
    if not inside:
        return Finding(
            "WARN",
            "this folder is not a git clone: make reset cannot find the original starters",
            "clone the workshop with git",
        )
    return Finding("ok", "git clone: make reset can find the original starters")


def examine(port: int, guide_port: int) -> list[Finding]:
    findings = [check_python()]
    if findings[0].level == "FAIL":
        return findings  # the rest of the workshop's code needs a newer Python even to be checked
    findings.append(check_venv())
    if running_in_venv():
        findings += check_pins()
    findings += [
        check_port(port, "the chat", blocking=True, other_ports=(guide_port,)),
        check_port(guide_port, "the guide, make docs", blocking=False),
        check_browser(),
        check_redis(),
        check_git(),
    ]
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=8000, help="the chat's port (default 8000)"
    )
    parser.add_argument(
        "--guide-port", type=int, default=8001, help="the guide's port (default 8001)"
    )
    args = parser.parse_args(argv)

    print(f"Checking this machine for the workshop ({ROOT}):\n")
    findings = examine(args.port, args.guide_port)
    for finding in findings:
        print(f"  {finding.level:<4}  {finding.what}")
        if finding.fix:
            print(f"        fix: {finding.fix}")
    blocking = sum(finding.level == "FAIL" for finding in findings)
    warnings = sum(finding.level == "WARN" for finding in findings)
    print()
    if blocking:
        print(
            f"{blocking} problem(s) block the workshop: fix the FAIL lines above, then run make doctor again."
        )
        return 1
    print(
        "Ready for the workshop."
        + (f" ({warnings} warning(s): see WARN above.)" if warnings else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
