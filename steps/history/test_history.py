"""Chapter "history" checks: the last 50 messages in SQLite, shown to every newcomer,
kept through a crash, and a file that does not work never stops the chat.

Run: pytest steps/history

Each check starts the app as `python app.py --host 127.0.0.1 --port P` with its own
file (CHAT_HISTORY in the environment), and a file that does not work is tried again
every half second instead of every 2 s.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from workshop.harness import (
    ChatClient,
    CheckFailure,
    eventually,
    join,
    start_server,
)

KEPT = 50  # messages a newcomer is shown
RETRY_SECONDS = "0.5"
DAMAGED = b"This is not a SQLite database, just a file that took its name.\n" * 64


@pytest.fixture
def history_file(request, tmp_path):
    """The file this check's server uses; `damaged` ones hold garbage from the start."""
    path = tmp_path / "chat-history.db"
    if getattr(request, "param", None) == "damaged":
        path.write_bytes(DAMAGED)
    return path


@pytest.fixture
def server(app_dir, history_file):
    """The app as `python app.py --port P`, on this check's own history file."""
    running = start_server(app_dir, env=settings(history_file), direct=True)
    yield running
    running.stop()


def settings(history_file) -> dict:
    return {
        "CHAT_HISTORY": str(history_file),
        "CHAT_HISTORY_RETRY_SECONDS": RETRY_SECONDS,
    }


@pytest.mark.guide("history.md#newcomers")
def test_a_newcomer_sees_the_last_50_messages_after_joining(connect):
    """After 60 messages (and someone else coming and going), a newcomer gets "...
    joined the chat", then the last 50 messages in order, each with an id, and no old
    news; the room heard each message once."""
    talker, name = join(connect)
    said = [f"message {n}" for n in range(60)]
    for text in said:
        talker.say(text)
    for text in said:
        talker.wait_for_chat(name, text)
    twice = chats(talker.sync())
    if twice:
        raise CheckFailure(
            f"The room heard some messages twice ({twice[:2]}): history.add() "
            "broadcasts each message once it is saved; the handler must not broadcast "
            "it as well.",
            read="history.md#save-first",
        )
    passing, passer = join(connect)
    passing.close()  # news, not chat messages: no newcomer is shown them later
    talker.wait_for_system(f"{passer} left the chat")
    newcomer = connect()
    first = newcomer.wait_for(lambda m: m.get("type") != "ping", "a first message")
    if first.get("type") != "system" or "joined the chat" not in first["message"]:
        raise CheckFailure(
            f'A newcomer should first hear "... joined the chat", then the history, '
            f"not {first}: add_client announces them and sends the history, under one "
            "lock.",
            read="history.md#one-lock",
        )
    shown = newcomer.sync()
    news = [m for m in shown if m.get("type") not in ("chat", "ping")]
    assert not news, (
        f"A newcomer was shown old news as history: {news[:2]}. Only chat messages "
        'go into `recent` (payload["type"] == "chat").'
    )
    shown = chats(shown)
    texts = [m.get("message") for m in shown]
    assert texts == said[-KEPT:], (
        f"After 60 messages a newcomer should be shown the last {KEPT} "
        f"(message 10 to message 59), in order, right after joining; it got "
        f"{len(texts)}: {texts[:3]} ... {texts[-3:]}"
    )
    ids = [m.get("id") for m in shown]
    assert all(isinstance(i, int) for i in ids) and ids == sorted(set(ids)), (
        f"Each message should carry the id of its row, increasing: {ids[:5]} ..."
    )
    extra = chats(talker.sync())
    if extra:
        raise CheckFailure(
            f"The room heard some messages twice ({extra[:2]}): history.add() "
            "broadcasts each message once it is saved; the handler must not broadcast "
            "it as well.",
            read="history.md#save-first",
        )


@pytest.mark.guide("history.md#one-lock")
def test_newcomers_joining_mid_conversation_get_each_message_once(connect):
    """While someone chats fast, five newcomers join: each is shown the history, then
    hears the rest live, with no message twice and none missing in between."""
    talker, name = join(connect)
    said = [f"fast {n}" for n in range(150)]
    newcomers = []

    def let_them_join():
        for _ in range(5):
            newcomers.append(connect())

    for text in said[:30]:
        talker.say(text)
    talker.wait_for_chat(name, said[29])
    joining = threading.Thread(target=let_them_join)
    joining.start()
    for text in said[30:]:
        talker.say(text)
        talker.wait_for_chat(name, text)  # paced by the room's own answers
    joining.join()
    shown_to = [newcomer.sync() for newcomer in newcomers]  # each is in the room now
    talker.sync()  # so the talker has heard where each arrived, among the chat
    for number, shown in enumerate(shown_to, 1):
        got = [m["message"] for m in chats(shown)]
        assert got, f"Newcomer {number} was shown nothing, and heard nothing live."
        arrival = next(
            (
                m["message"]
                for m in shown
                if isinstance(m, dict)
                and str(m.get("message")).endswith(" joined the chat")
            ),
            None,
        )
        assert arrival, f"Newcomer {number} was not told it joined: {shown[:3]}"
        # Where the room announced it: that many chat messages were said before.
        before = chats_before(talker, arrival)
        first = said.index(got[0])
        assert first < before, (
            f"Newcomer {number} joined after {before} messages, but the first it was "
            f"shown is {got[0]!r}: the history (the last {KEPT}) should come first."
        )
        assert got == said[first:], (
            f"Newcomer {number} heard the history and then the live messages with a "
            f"repeat or a gap: {describe_gaps(got, said[first:])}. Send the history "
            "in add_client, under the lock that broadcast() takes."
        )


@pytest.mark.guide("history.md#save-first")
def test_a_server_killed_mid_conversation_loses_nothing_the_room_saw(
    app_dir, history_file, server, connect
):
    """Three people chat; the server is killed (SIGKILL) mid-conversation, then started
    again on the same file: its history holds every message the room had seen."""
    watcher = connect()
    talkers = [connect() for _ in range(3)]
    stop = threading.Event()

    def talk(number, client):
        for n in range(10_000):
            if stop.is_set():
                return
            try:
                client.say(f"talker {number} says {n}")
            except Exception:  # noqa: BLE001 - the server is gone
                return
            stop.wait(0.01)

    threads = [threading.Thread(target=talk, args=t) for t in enumerate(talkers)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(60):  # killed once the room has seen 60, while they talk on
            watcher.wait_for(lambda m: m.get("type") == "chat", "the conversation")
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    seen = [m["message"] for m in chats(everything_until_closed(watcher))]
    again = start_server(app_dir, env=settings(history_file), direct=True)
    try:
        newcomer = again.connect()
        newcomer.wait_for_system("joined the chat")
        shown = [m["message"] for m in chats(newcomer.sync())]
    finally:
        again.stop()
    last = shown.index(seen[-1]) + 1 if seen[-1] in shown else 0
    kept, unseen = shown[:last], shown[last:]  # unseen: saved, not yet delivered
    assert kept and kept == seen[-len(kept) :], (
        f"The room had seen {len(seen)} messages when the server was killed; after a "
        f"restart a newcomer was shown {len(shown)} of them, not the room's last "
        f"{min(KEPT, len(seen))}: {shown[-3:]}. Save first, broadcast after "
        "(history.add), and load the file at start (recent.extend(history.load()) "
        "in the __main__ block)."
    )
    assert len(kept) == min(len(seen), KEPT - len(unseen)), (
        f"After the restart a newcomer was shown {len(kept)} of the {len(seen)} "
        f"messages the room had seen; the last {KEPT} should all be there."
    )
    assert not set(unseen) & set(seen), (
        f"The history after the restart is out of order: {shown}"
    )


@pytest.mark.guide("history.md#bad-file")
@pytest.mark.parametrize("history_file", ["damaged"], indirect=True)
def test_a_damaged_file_gets_one_clear_line_and_the_chat_goes_on(
    server, connect, history_file
):
    """The file is not a database: the terminal says so once, the chat works, and
    once the file is moved away, as the line says, a new one keeps the messages."""
    client, name = join(connect)
    for n in range(3):
        client.say(f"despite the damage {n}")
        client.wait_for_chat(name, f"despite the damage {n}")
    assert server.process.poll() is None, "The server stopped over a damaged file."
    told = lines_about(server, history_file)
    assert len(told) == 1 and "not a SQLite database" in told[0], (
        f"The terminal should say once that {history_file.name} is not a SQLite "
        f"database, and what to do; it said {len(told)} lines about it: {told[:3]}"
    )
    history_file.rename(history_file.with_name(history_file.name + ".broken"))
    eventually(lambda: "works again" in server.output(), '"... works again"')
    client.say("after the fix")
    client.wait_for_chat(name, "after the fix")
    expected = [f"despite the damage {n}" for n in range(3)] + ["after the fix"]
    saved_in(history_file, expected)


@pytest.mark.guide("history.md#bad-file")
def test_a_locked_file_delays_no_message_and_loses_none(server, connect, history_file):
    """Another program locks the file: messages still reach the room, the terminal
    says why they are not saved, once, and they are saved once the lock is gone."""
    client, name = join(connect)
    client.say("before the lock")
    client.wait_for_chat(name, "before the lock")
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCK_THE_FILE, str(history_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout.readline().strip() == "locked"
        for n in range(4):
            client.say(f"during the lock {n}")
            client.wait_for_chat(name, f"during the lock {n}")
    finally:
        locker.stdin.close()  # it commits and ends
        locker.wait(10)
    told = [line for line in lines_about(server, history_file) if "lock" in line]
    assert len(told) == 1, (
        f"The terminal should say once that another program holds a lock on "
        f"{history_file.name}; it said {len(told)} lines about it: {told[:3]}"
    )
    eventually(lambda: "works again" in server.output(), '"... works again"')
    expected = ["before the lock"] + [f"during the lock {n}" for n in range(4)]
    saved_in(history_file, expected)


@pytest.mark.guide("history.md#the-file")
def test_the_file_is_next_to_app_py_unless_chat_history_names_another(
    app_dir, tmp_path
):
    """app.py's history file is chat-history.db next to app.py, or the file that the
    environment variable CHAT_HISTORY names."""
    default = app_dir / "chat-history.db"
    chosen = tmp_path / "elsewhere.db"
    for wanted, environment in ((default, ""), (chosen, str(chosen))):
        found = subprocess.run(
            [sys.executable, "-c", SHOW_THE_FILE],
            cwd=app_dir,
            env={**os.environ, "CHAT_HISTORY": environment},
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        assert found and Path(found).resolve() == wanted.resolve(), (
            f"With CHAT_HISTORY={environment!r}, app.py's `history` should use "
            f"{wanted}, not {found or 'nothing (it has no `history` yet)'}."
        )
    if chosen.exists():
        raise CheckFailure(
            f"Importing app.py opened its history file ({chosen.name} exists now): "
            "importing starts nothing. Call recent.extend(history.load()) in the "
            "__main__ block, before app.run.",
            read="history.md#save-first",
        )


# --- helpers -----------------------------------------------------------------------

# Holds the file's write lock until its stdin closes.
LOCK_THE_FILE = """import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("COMMIT")
"""
SHOW_THE_FILE = """import app
history = getattr(app, "history", None)
print(getattr(history, "path", "") or "")
"""


def is_chat(message) -> bool:
    return isinstance(message, dict) and message.get("type") == "chat"


def chats_before(client: ChatClient, text: str) -> int:
    """How many chat messages the client had received before the message `text`."""
    count = 0
    for message in client.received:
        if isinstance(message, dict) and message.get("message") == text:
            return count
        count += is_chat(message)
    raise AssertionError(f'The room was never told "{text}".')


def chats(messages: list) -> list[dict]:
    return [m for m in messages if is_chat(m)]


def everything_until_closed(client: ChatClient) -> list:
    """What a client received, up to the moment the server went away."""
    try:
        client.wait_for(lambda m: False, "the server to go away")
    except AssertionError:
        pass
    return client.received


def describe_gaps(got: list[str], wanted: list[str]) -> str:
    repeats = sorted({text for text in got if got.count(text) > 1})
    missing = [text for text in wanted if text not in got]
    return f"repeated {repeats[:3]}, missing {missing[:3]}"


def lines_about(server, history_file) -> list[str]:
    return [line for line in server.output().splitlines() if history_file.name in line]


def saved_in(history_file, expected: list[str]) -> None:
    with sqlite3.connect(history_file) as db:
        try:
            rows = db.execute("SELECT message FROM messages ORDER BY id").fetchall()
        except sqlite3.Error as error:
            rows = [(f"(cannot read it: {error})",)]
    saved = [row[0] for row in rows]
    assert saved[-len(expected) :] == expected, (
        f"{history_file.name} should end with {expected}, but holds {saved[-6:]}."
    )
