"""`python -m workshop`, the one command behind every make target, used without make: as a
learner on Windows types it (`py -m workshop step 4`), and as make runs it."""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from workshop import cli, doctor
from workshop.ports import free_port, port_is_free
from workshop.steps import ROOT, STEPS, keys_text
from workshop.steps import step as find_step

COMMANDS = sorted(
    cli.parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
)
MAKEFILE = (ROOT / "Makefile").read_text()
MAKE_TARGETS = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.MULTILINE))


def workshop(*arguments: str, cwd: Path = ROOT, python: str = sys.executable, env=None):
    finished = subprocess.run(
        [python, "-m", "workshop", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    finished.output = finished.stdout + finished.stderr  # type: ignore[attr-defined]
    return finished


# --- every command, its help, its exit status ---------------------------------------------


def test_every_learner_and_instructor_action_is_a_command():
    wanted = {"step", "solution", "check", "test", "progress", "watch", "hint", "diff"}
    wanted |= {"reset", "solve", "doctor", "docs", "demo", "bots", "bench", "setup"}
    assert wanted <= set(COMMANDS), wanted - set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    assert cli.main([command, "--help"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"usage: python -m workshop {command}"), printed
    if "STEP" in printed.split("\n")[0]:
        assert keys_text() in printed, f"the help should list the steps:\n{printed}"


@pytest.mark.parametrize(
    "arguments",
    [[], ["no-such-command"], ["hint"], ["hint", "3", "--no-such-option"]],
    ids=["nothing", "unknown command", "missing step", "unknown option"],
)
def test_a_wrong_command_exits_2_with_the_usage(arguments, capsys):
    assert cli.main(arguments) == 2
    assert "usage: python -m workshop" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["step", "solution", "check", "hint", "diff"])
def test_an_unknown_step_exits_2_with_one_line(command):
    refused = workshop(command, "8")
    assert refused.returncode == 2, refused.output
    assert refused.stderr == (
        f"error: there is no step '8': the workshop has {keys_text()}\n"
    ), refused.output


def test_a_check_that_fails_exits_1_and_one_that_passes_0():
    solution = str(find_step(1).solution_dir)
    assert workshop("check", "1", "--app", solution, "-q").returncode == 0
    failed = workshop("check", "1", env={"CHECK_WAIT_SECONDS": "1"})
    assert failed.returncode == 1, failed.output
    assert "Check: " in failed.stdout, failed.output


def test_a_busy_port_exits_1_and_says_who_holds_it():
    with __import__("socket").socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        refused = workshop("solution", "7", "--port", str(port))
    assert refused.returncode == 1, refused.output
    assert f"held by pid {os.getpid()}" in refused.stderr, refused.output


def test_solution_runs_and_ctrl_c_stops_it(background):
    port = free_port()
    server = background(
        [sys.executable, "-m", "workshop", "solution", "room", "--port", str(port)]
    )
    from test_commands import wait_for_http  # the same wait as the make form

    assert wait_for_http(port, server.process)[0] == 200
    exit_status, output = server.interrupt()
    assert exit_status in (0, -signal.SIGINT), output
    assert "Traceback" not in output, output
    assert port_is_free(port), f"a server still holds port {port} after Ctrl-C"


# --- make is only an alias ------------------------------------------------------------------


def test_every_command_has_a_make_target_and_every_target_a_command():
    aliases = MAKE_TARGETS - {"help", "docs-build"}
    assert aliases == set(COMMANDS), (
        f"make targets without a command: {aliases - set(COMMANDS)}; "
        f"commands without a make target: {set(COMMANDS) - aliases}"
    )


@pytest.mark.parametrize("target", sorted(MAKE_TARGETS - {"help"}))
def test_each_make_target_is_one_line_running_the_command(target):
    takes_a_step = target in re.search(r"STEP_TARGETS := (.*)", MAKEFILE).group(1)
    arguments = [target, "4"] if takes_a_step else [target]
    shown = subprocess.run(
        ["make", "-n", "--no-print-directory", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    # (the ":" is make saying it has nothing to do for the target "4")
    lines = [
        line for line in shown.stdout.splitlines() if line.strip() not in ("", ":")
    ]
    command = "docs --build" if target == "docs-build" else target
    assert len(lines) == 1 and f"-m workshop {command}" in lines[0], shown.stdout
    if takes_a_step:
        assert lines[0].split()[-1] == "4" or " 4 " in lines[0], lines[0]


def test_make_help_names_the_steps_of_the_course():
    shown = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert " ".join(step.key for step in STEPS) in shown.stdout, shown.stdout


# --- Windows, and a Python that is too old --------------------------------------------------


def test_the_venv_python_is_found_where_windows_puts_it(tmp_path):
    assert cli.venv_python(tmp_path) == tmp_path / "bin" / "python" or os.name == "nt"
    (tmp_path / "Scripts").mkdir()
    (tmp_path / "Scripts" / "python.exe").write_text("")
    assert cli.venv_python(tmp_path) == tmp_path / "Scripts" / "python.exe"


@pytest.mark.parametrize(
    "system, platform, advice",
    [
        ("nt", "win32", ["python.org/downloads/windows", "winget", "py -3.12 -m"]),
        ("posix", "darwin", ["brew install python@3.12", "python3.12 -m workshop"]),
        ("posix", "linux", ["apt install python3.12", "uv python install 3.12"]),
    ],
)
def test_a_too_old_python_is_told_what_to_install(
    system, platform, advice, monkeypatch
):
    monkeypatch.setattr(cli, "modern_python", lambda: None)
    monkeypatch.setattr(cli.os, "name", system)
    monkeypatch.setattr(cli.sys, "platform", platform)
    text = cli.get_python_advice()
    assert all(part in text for part in advice), text
    assert text.endswith("-m workshop setup"), text


def an_old_python() -> str | None:
    for candidate in ("/usr/bin/python3.11", "python3.11", "python3.10", "python3.9"):
        found = shutil.which(candidate)
        if found and workshop_python_version(found) < (3, 12):
            return found
    return None


def workshop_python_version(python: str) -> tuple[int, ...]:
    answer = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    return tuple(map(int, answer.stdout.split())) if answer.returncode == 0 else (9,)


@pytest.fixture
def fresh_copy(tmp_path) -> Path:
    """The workshop's code without a .venv: a learner's clone before setup."""
    copy = tmp_path / "workshop-copy"
    shutil.copytree(
        ROOT / "workshop",
        copy / "workshop",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "requirements.txt", copy)
    return copy


@pytest.mark.parametrize("command", [["setup"], ["step", "1"], ["doctor"]])
def test_an_old_python_says_exactly_what_to_do(fresh_copy, command):
    old = an_old_python()
    if old is None:
        pytest.skip("no Python older than 3.12 on this machine to try")
    told = workshop(*command, cwd=fresh_copy, python=old)
    assert told.returncode == 1, told.output
    assert "the workshop needs 3.12 or newer" in told.stdout, told.output
    assert "-m workshop setup" in told.stdout and "Traceback" not in told.output, (
        told.output
    )
    assert not (fresh_copy / ".venv").exists()


def test_setup_without_make_creates_the_venv_and_the_commands_use_it(fresh_copy):
    """What a Windows learner does: `py -m workshop setup`, then any command."""
    # Nothing to download: the pins are the repository's business, the venv is ours.
    (fresh_copy / "requirements.txt").write_text("# no pins in this test\n")
    made = workshop("setup", cwd=fresh_copy, env={"WORKSHOP_NO_VENV": ""})
    assert made.returncode == 0, made.output
    python = cli.venv_python(fresh_copy / ".venv")
    assert python.exists() and (fresh_copy / ".venv" / ".installed").exists()
    hint = workshop("hint", "1", cwd=fresh_copy)
    assert hint.returncode == 0 and "hint 1 of" in hint.stdout, hint.output
    # It ran in the new .venv: the hints' state sits beside it, and so does its Python.
    assert (fresh_copy / ".workshop-state" / "hints.json").exists()


# --- doctor and Cello's look-alikes ---------------------------------------------------------


def test_doctor_refuses_a_look_alike_that_also_installs_cello(tmp_path):
    """`cellon` (Cello's successor) installs a module named cello too; our checks fail on it."""
    record = tmp_path / "cellon-1.4.6.dist-info"
    record.mkdir()
    (record / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: cellon\nVersion: 1.4.6\n"
    )
    (record / "RECORD").write_text("cello/__init__.py,,\n")
    (record / "top_level.txt").write_text("cello\n")
    checked = workshop(
        "doctor", "--port", str(free_port()), env={"PYTHONPATH": str(tmp_path)}
    )
    assert checked.returncode == 1, checked.output
    assert (
        "FAIL  the `cello` module comes from cellon 1.4.6 (besides cello-framework 1.4.1)"
        in checked.stdout
    ), checked.output
    assert "pip uninstall -y cellon" in checked.stdout, checked.output
    assert "--force-reinstall cello-framework==1.4.1" in checked.stdout, checked.output


@pytest.mark.parametrize(
    "providers, level, says",
    [
        ({"cello-framework": "1.4.1"}, "ok", "comes from cello-framework 1.4.1"),
        ({"cellon": "1.4.6"}, "FAIL", "comes from cellon 1.4.6: the workshop"),
        ({"cello-framework": "1.4.0"}, "FAIL", "cello-framework 1.4.0, but"),
        ({}, "FAIL", "no `cello` module"),
    ],
)
def test_doctor_names_who_provides_cello(providers, level, says):
    finding = doctor.check_framework(providers)
    assert finding.level == level and says in finding.what, finding
    if level == "FAIL":
        assert "cello-framework==1.4.1" in finding.fix or "requirements" in finding.fix


def test_a_command_run_for_the_learner_still_gets_ctrl_c(capfd):
    """Regression: the CLI ignored Ctrl-C while running pytest or mkdocs, and the program
    inherited that: under `make test`, Ctrl-C no longer stopped `make watch` or the bots."""
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    assert cli.run_foreground([sys.executable, "-c", probe]) == 0
    assert capfd.readouterr().out.strip() == "True", "SIGINT is ignored in the command"
