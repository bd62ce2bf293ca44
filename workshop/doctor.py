"""Is this machine ready for the workshop? Each problem comes with its fix.  `make doctor`

    python -m workshop doctor [--port 8000] [--guide-port 8001]

Checks Python (3.12 or newer), the .venv, that the `cello` module is Cello 1.4.1 itself
(`cello-framework`, not a look-alike such as `cellon`), the other pins of requirements.txt,
whether the chat's and the guide's ports are free (and who holds them), a browser for the
browser checks, and git (for `make reset`). Exit status 1 when something blocks the
workshop (FAIL); a WARN does not.

This file must run on an old Python too, far enough to say that it is too old: hence the __future__
import, and workshop.ports (which needs 3.10) imported only once the version is known to be good.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from workshop.chromium import usable_chromium
from workshop.cli import (
    MINIMUM_PYTHON,
    ROOT,
    VENV,
    get_python_advice,
    in_venv,
    python_version,
    venv_python,
    workshop_command,
)

# The packages the chat and its checks run on: a different version of one of these can change behaviour
# the checks rely on. Any other pin that differs is only a warning.
ESSENTIAL_PACKAGES = ("cello-framework", "websockets", "pytest")
# The distribution that must provide the `cello` module, and the look-alikes that also
# install one (docs/troubleshooting.md#cello-look-alike): cellon 1.4.6, Cello's successor, fails our
# WebSocket checks ("upgrade expected but low level API in use").
FRAMEWORK = "cello-framework"


@dataclass
class Finding:
    level: str  # "ok", "WARN" (works, with a caveat) or "FAIL" (blocks the workshop)
    what: str
    fix: str = ""


def dotted(version) -> str:
    return ".".join(map(str, version))


def check_python() -> Finding:
    version = python_version()
    if version is None or version < MINIMUM_PYTHON:
        return Finding(
            "FAIL",
            f"Python {dotted(version or ())} ({sys.executable}) is too old: the workshop needs 3.12 or newer",
            get_python_advice(),
        )
    return Finding("ok", f"Python {dotted(version)} ({sys.executable})")


def check_venv() -> Finding:
    python = venv_python()
    setup = workshop_command("setup")
    if not VENV.is_dir():
        return Finding(
            "FAIL",
            "there is no .venv yet (the workshop's virtual environment)",
            setup,
        )
    version = python_version(python)
    if version is None:
        return Finding(
            "FAIL",
            f"{python} does not run (was the Python that made .venv removed or upgraded?)",
            f"{setup} (it makes .venv again)",
        )
    if version < MINIMUM_PYTHON:
        too_old = (
            f".venv was made with Python {dotted(version)}: it needs 3.12 or newer"
        )
        return Finding("FAIL", too_old, f"{setup} (it makes .venv again)")
    if not in_venv():
        return Finding(
            "WARN",
            f".venv is fine, but this is {sys.executable}, not .venv's Python, so the pins were not checked",
            f"{workshop_command('doctor')} (it uses .venv)",
        )
    return Finding("ok", f".venv (Python {dotted(version)}) is the Python in use")


def read_pins(requirements) -> dict[str, str]:
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

    fix = f"{venv_python()} -m pip install -r requirements.txt"
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


def cello_providers() -> dict[str, str]:
    """Each installed distribution that provides a `cello` module, with its version."""
    from importlib.metadata import packages_distributions, version

    return {name: version(name) for name in packages_distributions().get("cello", [])}


def check_framework(providers: dict[str, str] | None = None) -> Finding:
    """Cello itself, not a look-alike: which distribution provides the `cello` module."""
    providers = cello_providers() if providers is None else providers
    pinned = read_pins(ROOT / "requirements.txt")[FRAMEWORK]
    python = venv_python()
    reinstall = f"{python} -m pip install --force-reinstall {FRAMEWORK}=={pinned}"
    others = {name: found for name, found in providers.items() if name != FRAMEWORK}
    if others:
        named = ", ".join(f"{name} {found}" for name, found in sorted(others.items()))
        also = (
            f" (besides {FRAMEWORK} {providers[FRAMEWORK]})"
            if FRAMEWORK in providers
            else ""
        )
        return Finding(
            "FAIL",
            f"the `cello` module comes from {named}{also}: the workshop is written for "
            f"{FRAMEWORK}=={pinned}, and its WebSocket checks fail on look-alikes "
            '("upgrade expected but low level API in use")',
            f"{python} -m pip uninstall -y {' '.join(sorted(others))}, then: {reinstall} "
            "(uninstalling removes the files both put in cello/, so Cello goes back in)",
        )
    if FRAMEWORK not in providers:
        return Finding(
            "FAIL",
            f"no `cello` module: {FRAMEWORK} is not installed",
            f"{python} -m pip install -r requirements.txt",
        )
    if providers[FRAMEWORK] != pinned:
        return Finding(
            "FAIL",
            f"the `cello` module comes from {FRAMEWORK} {providers[FRAMEWORK]}, but the "
            f"workshop is written for {pinned}",
            reinstall,
        )
    return Finding(
        "ok", f"the `cello` module comes from {FRAMEWORK} {pinned}, as pinned"
    )


def check_port(
    port: int, purpose: str, blocking: bool, other_ports: tuple[int, ...] = ()
) -> Finding:
    from workshop.ports import port_is_free, suggest_port, who_listens

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
        # A port that is free now and that no other part of the workshop uses.
        spare = suggest_port(port, "127.0.0.1", avoid=other_ports)
        fix += f", or run the chat on another port: PORT={spare} make step N"
    return Finding(
        "FAIL" if blocking else "WARN",
        f"port {port} ({purpose}) is in use{held_by}",
        fix,
    )


def check_browser() -> Finding:
    browser = usable_chromium()
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
    from workshop.redis_server import find_redis_server

    found = find_redis_server()
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
    if in_venv():
        findings += [check_framework(), *check_pins()]
    findings += [
        check_port(port, "the chat", blocking=True, other_ports=(guide_port,)),
        check_port(guide_port, "the guide, make docs", blocking=False),
        check_browser(),
        check_redis(),
        check_git(),
    ]
    return findings


def report(port: int = 8000, guide_port: int = 8001) -> int:
    """Print every finding, with its fix; 1 when something blocks the workshop."""
    print(f"Checking this machine for the workshop ({ROOT}):\n")
    findings = examine(port, guide_port)
    for finding in findings:
        print(f"  {finding.level:<4}  {finding.what}")
        if finding.fix:
            print(f"        fix: {finding.fix}")
    blocking = sum(finding.level == "FAIL" for finding in findings)
    warnings = sum(finding.level == "WARN" for finding in findings)
    print()
    if blocking:
        print(
            f"{blocking} problem(s) block the workshop: fix the FAIL lines above, then run "
            f"{workshop_command('doctor')} again."
        )
        return 1
    print(
        "Ready for the workshop."
        + (f" ({warnings} warning(s): see WARN above.)" if warnings else "")
    )
    return 0
