"""Step 7 checks: `python app.py` runs the chat for a room, with a heartbeat.

Run: pytest steps/step7

Each check starts the app the way this step runs it, `python app.py --host 127.0.0.1
--port P`, with the heartbeat shortened through the environment (30 s is too slow to
wait).
"""

import subprocess
import sys
import time

import pytest

from workshop.harness import ChatServer, a_room_hears, join_raw, online, start_server

HEARTBEAT_SECONDS = (
    "0.15"  # 30 s by default; the silence limit is then the app's least, 0.6 s
)
ROOM = 300  # a class: far more than the 64 threads of Cello's default pool


@pytest.fixture(scope="module")
def server(app_dir):
    """The app as `python app.py --host 127.0.0.1 --port P`, with its own settings."""
    running = start_server(app_dir, direct=True)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def heartbeat(app_dir):
    """The same, pinging every 0.15 s: a silent participant is gone within a second."""
    running = start_server(
        app_dir, env={"CHAT_HEARTBEAT_SECONDS": HEARTBEAT_SECONDS}, direct=True
    )
    yield running
    running.stop()


@pytest.mark.guide("step7.md#run-the-application")
def test_python_app_py_starts_the_server(server):
    """`python app.py --port P` starts the chat on port P (Cello reads --port)."""
    users = server.get_json("/users")
    assert users.get("count") == 0, (
        f"A fresh server should have nobody online: /users says {users}."
    )


@pytest.mark.guide("step7.md#run-the-application")
@pytest.mark.parametrize(
    "how",
    [["--env", "production"], ["--workers", "2"], "CELLO_ENV=production"],
    ids=["env", "workers", "CELLO_ENV"],
)
def test_one_room_even_when_asked_for_several_processes(app_dir, how):
    """`--env production`, `--workers 2` or CELLO_ENV=production still give one room."""
    command = [
        sys.executable,
        str(app_dir / "app.py"),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    env = {}
    if isinstance(how, list):
        command += how
    else:
        env["CELLO_ENV"] = "production"
    asked = " ".join(how) if isinstance(how, list) else how
    with ChatServer(app_dir, command, env).wait_until_accepting() as server:
        room = [server.connect() for _ in range(8)]
        for number, member in enumerate(room):
            member.say(f"hello from {number}")
        heard: set[str] = set()
        while len(heard) < len(room):
            try:
                hello = room[0].wait_for(
                    lambda m: (
                        m.get("type") == "chat"
                        and m["message"].startswith("hello from")
                        and m["message"] not in heard
                    ),
                    f"the other hellos (heard {len(heard)} of {len(room)})",
                )
            except AssertionError:
                raise AssertionError(
                    f"Started with {asked}, one participant heard {len(heard)} of the "
                    f"{len(room)} hellos. Several processes each keep their own room "
                    "in "
                    "memory: pin one with app.run(..., workers=1)."
                ) from None
            heard.add(hello["message"])


@pytest.mark.guide("step7.md#a-whole-room")
def test_a_room_of_300_all_hear_a_message(server):
    """300 participants (Cello's pool has 64 threads) all join and hear a message."""
    a_room_hears(
        server,
        ROOM,
        "A `def` handler holds one of the pool's threads for as long as its "
        "participant "
        "stays, and Cello's pool has 64: "
        "app.set_threadpool(ThreadPoolConfig(size=ROOM_SIZE)).",
    )


@pytest.mark.guide("step7.md#heartbeat")
def test_the_heartbeat_pings_every_participant(heartbeat):
    """Every participant receives {"type": "ping"} every CHAT_HEARTBEAT_SECONDS."""
    first, second = heartbeat.connect(), heartbeat.connect()
    for client in (first, second):
        client.wait_for(
            lambda m: m.get("type") == "ping",
            f'{{"type": "ping"}} (the heartbeat, every {HEARTBEAT_SECONDS} s)',
        )
    heartbeat.close_clients()


@pytest.mark.guide("step7.md#heartbeat")
def test_a_participant_who_vanished_is_announced_as_left(heartbeat):
    """A silent connection (no pong to the pings: a closed laptop) is taken out of the
    room
    and announced; one that answers every ping stays."""
    alive = heartbeat.connect()
    alive.rename("Alive")
    alive.wait_for_system("is now known as Alive")
    # Neither reads nor answers, as a vanished laptop.
    vanished, name = join_raw(heartbeat)
    try:
        gone = f"{name} left the chat"
        limit = 3 + 6 * float(HEARTBEAT_SECONDS)
        deadline = time.monotonic() + limit
        while not any(
            isinstance(m, dict) and m.get("message") == gone for m in alive.received
        ):
            try:
                message = alive.wait_for(
                    lambda m: m.get("type") in ("ping", "system", "error"),
                    "",
                    deadline - time.monotonic(),
                )
            except AssertionError as problem:
                if (
                    time.monotonic() < deadline
                ):  # not a timeout: Alive itself was dropped
                    raise AssertionError(
                        f"Alive answered every ping, yet: {problem}"
                    ) from None
                raise AssertionError(
                    f"{name} answered none of the pings for {limit:g} s, yet nobody "
                    "heard "
                    f'"{gone}". A vanished laptop never closes its connection: wait '
                    "for each "
                    "message at most SILENCE_LIMIT_SECONDS (ws.recv(timeout=...))."
                ) from None
            if message["type"] == "error":
                raise AssertionError(
                    f"Alive's pong was refused: {message['message']} "
                    'parse_message must accept {"type": "pong"} (messages.py).'
                )
            if message["type"] == "ping":
                alive.send_json({"type": "pong"})  # what the page does
        said = [m.get("message") for m in alive.received if isinstance(m, dict)]
        assert "Alive left the chat" not in said, (
            "Alive answered every ping with a pong, yet was taken out of the room."
        )
        users = online(heartbeat)
        assert "Alive" in users and name not in users, (
            f"/users should list Alive and not {name}: {users}"
        )
    finally:
        vanished.close()
        heartbeat.close_clients()


@pytest.mark.guide("step7.md#heartbeat")
def test_importing_app_py_starts_nothing(app_dir):
    """Importing app.py (as the checks and other tools do) starts no thread: the
    heartbeat
    starts in the `if __name__ == "__main__":` block."""
    probe = (
        "import runpy, sys, threading; sys.path.insert(0, sys.argv[1]); "
        "app = runpy.run_path(sys.argv[1] + '/app.py', run_name='chat_app'); "
        "print('heartbeat_loop' in app); "
        "print(sorted(t.name for t in threading.enumerate() if t is not "
        "threading.main_thread()))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe, str(app_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert found.returncode == 0, f"Importing app.py failed:\n{found.stderr[-1500:]}"
    has_heartbeat, started = found.stdout.strip().splitlines()[-2:]
    assert has_heartbeat == "True", (
        "app.py has no heartbeat_loop() yet (part 3 of the TODOs)."
    )
    assert started == "[]", (
        f"Importing app.py started threads: {started}. Start the heartbeat in the "
        '`if __name__ == "__main__":` block: a module that starts threads when '
        "imported "
        "pings a room that does not exist (in the checks, in a test runner, in a REPL)."
    )
