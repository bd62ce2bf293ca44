"""The login chapter's handed-out accounts.py: what the chapter's checks take for granted.

The checks run with the cheapest hashing and their own key; these tests make sure that the
defaults are the real ones, that hashing is bounded, and that the command line and a damaged
file behave as docs/login.md says.
"""

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workshop.steps import ROOT

FOLDER = ROOT / "solutions" / "login"


def environment(data: Path, **extra: str) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CHAT_SECRET", "CHAT_PASSWORD_HASHING"))
    }
    return {**env, "CHAT_DATA": str(data), **extra}


def python(code_or_args: list[str], data: Path, stdin: str = "", **extra: str):
    return subprocess.run(
        [sys.executable, *code_or_args],
        cwd=FOLDER,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(data, **extra),
        start_new_session=True,  # no terminal: getpass reads the password from stdin
    )


@pytest.fixture
def accounts(tmp_path, monkeypatch):
    """accounts.py imported here, with the cheapest hashing and a temporary data folder."""
    monkeypatch.setenv("CHAT_DATA", str(tmp_path))
    monkeypatch.setenv("CHAT_PASSWORD_HASHING", "cheapest")
    monkeypatch.syspath_prepend(str(FOLDER))  # it imports messages.py from beside it
    spec = importlib.util.spec_from_file_location(
        "login_accounts", FOLDER / "accounts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_default_hashing_is_argon2id_with_real_parameters(tmp_path):
    shown = python(
        [
            "-c",
            "import accounts; print(accounts._hasher.memory_cost, accounts._hasher.time_cost, accounts._hasher.type.name)",
        ],
        tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["65536", "3", "ID"], shown.stdout


def test_an_unknown_hashing_setting_stops_with_one_line(tmp_path):
    shown = python(["-c", "import accounts"], tmp_path, CHAT_PASSWORD_HASHING="fast")
    assert (
        shown.returncode != 0 and "CHAT_PASSWORD_HASHING must be one of" in shown.stderr
    )
    assert "Traceback" not in shown.stderr, shown.stderr


def test_no_more_than_four_hashes_run_at_once(accounts, monkeypatch):
    """Twelve first logins at once: each hash is made slow here, so that without the
    bound all twelve would run together."""
    running, most, lock = 0, 0, threading.Lock()
    real = accounts._hasher

    class SlowHasher:
        def hash(self, password):
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            with lock:
                running -= 1
            return real.hash(password)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(accounts, "_hasher", SlowHasher())
    store = accounts.Accounts()
    started = threading.Barrier(12, timeout=10)

    def claim(number):
        started.wait()
        store.check(f"user{number}", "correct horse")

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == accounts.HASHES_AT_ONCE == 4, most
    assert len(store.names()) == 12


def test_a_name_is_claimed_once_and_names_ignore_case(accounts, tmp_path):
    store = accounts.Accounts()
    assert store.check("Ada", "first password") == "Ada"
    assert store.check("ada", "another password") is None
    assert store.check("ADA", "first password") == "Ada"  # the name as first claimed
    stored = (tmp_path / "users.json").read_text()
    assert "first password" not in stored and "$argon2id$" in stored
    assert oct((tmp_path / "users.json").stat().st_mode & 0o777) == "0o600"


def test_the_command_line_adds_and_lists_accounts(tmp_path):
    added = python(["accounts.py", "add", "Grace"], tmp_path, stdin="correct horse\n")
    assert added.returncode == 0 and "Grace can log in now." in added.stdout, added
    assert "correct horse" not in added.stdout + added.stderr
    listed = python(["accounts.py", "list"], tmp_path)
    assert listed.stdout.split() == ["Grace"], listed
    short = python(["accounts.py", "add", "Eve"], tmp_path, stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stdout + short.stderr
    assert python(["accounts.py"], tmp_path).returncode == 2


@pytest.mark.parametrize(
    "problem, setup, expected",
    [
        (
            "a damaged accounts file",
            {"users.json": "{half a file"},
            "is not an accounts file",
        ),
        ("a key too short", {"secret": "abc\n"}, "tokens need at least 32"),
    ],
)
def test_bad_data_stops_the_app_with_one_clear_line(tmp_path, problem, setup, expected):
    for name, text in setup.items():
        (tmp_path / name).write_text(text)
    started = python(["-c", "import app"], tmp_path, CHAT_PASSWORD_HASHING="cheapest")
    assert started.returncode != 0, f"{problem}: the app started anyway"
    assert expected in started.stderr and "Traceback" not in started.stderr, (
        f"{problem}: {started.stderr}"
    )


def test_the_key_is_made_once_and_kept_private(tmp_path):
    first = python(["-c", "import accounts; print(accounts.load_secret())"], tmp_path)
    again = python(["-c", "import accounts; print(accounts.load_secret())"], tmp_path)
    assert first.stdout == again.stdout and len(first.stdout.strip()) == 64
    assert oct((tmp_path / "secret").stat().st_mode & 0o777) == "0o600"
    given = python(
        ["-c", "import accounts; print(accounts.load_secret())"],
        tmp_path,
        CHAT_SECRET="k" * 40,
    )
    assert given.stdout.strip() == "k" * 40
