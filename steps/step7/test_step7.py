"""Step 7 checks: `python app.py` runs the chat for a room, with a heartbeat.

Run: pytest steps/step7

Each check starts the app the way this step runs it, `python app.py --host 127.0.0.1
--port P`, with the heartbeat shortened through the environment (30 s is too slow to
wait). The servers all start together, at the beginning.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from workshop.harness import (
    WAIT_SECONDS,
    a_room_hears,
    join,
    join_raw,
    online,
    start_servers,
    stop_servers,
)

HEARTBEAT_SECONDS = (
    "0.15"  # 30 s by default; the silence limit is then the app's least, 0.6 s
)
ROOM = 300  # a class: far more than the 64 threads of Cello's default pool
# Three ways to ask Cello for several processes: each must still give one room.
SEVERAL_PROCESSES = {
    "env": (["--env", "production"], {}),
    "workers": (["--workers", "2"], {}),
    "CELLO_ENV": ([], {"CELLO_ENV": "production"}),
}
# The finished code stops in a tenth of a second: a learner waits no longer than this.
CTRL_C_SECONDS = 3
# Joined at once: the chance that they all land in one of two processes is 1 in 16,000.
SPLIT_ROOM_PROBE = 16


@pytest.fixture(scope="module")
def servers(app_dir):
    """Every server these checks need, started side by side: the app as `python app.py`,
    the same pinging every 0.15 s, and the same asked for several processes."""
    heartbeat = {"CHAT_HEARTBEAT_SECONDS": HEARTBEAT_SECONDS}
    specs = {
        "plain": (app_dir, None, True, None, None),
        "heartbeat": (app_dir, heartbeat, True, None, None),
        **{
            name: (app_dir, env, True, None, arguments)
            for name, (arguments, env) in SEVERAL_PROCESSES.items()
        },
    }
    started = dict(zip(specs, start_servers(list(specs.values())), strict=True))
    yield started
    stop_servers(list(started.values()))


@pytest.fixture(scope="module")
def server(servers):
    """The app as `python app.py --host 127.0.0.1 --port P`, with its own settings."""
    return servers["plain"]


@pytest.fixture(scope="module")
def heartbeat(servers):
    """The same, pinging every 0.15 s: a silent participant is gone within a second."""
    return servers["heartbeat"]


@pytest.mark.guide("step7.md#run-the-application")
def test_python_app_py_starts_the_server(server):
    """`python app.py --port P` starts the chat on port P (Cello reads --port)."""
    users = server.get_json("/users")
    assert users.get("count") == 0, (
        f"A fresh server should have nobody online: /users says {users}."
    )


@pytest.mark.guide("step7.md#run-the-application")
@pytest.mark.parametrize("how", SEVERAL_PROCESSES)
def test_one_room_even_when_asked_for_several_processes(servers, how):
    """`--env production`, `--workers 2` or CELLO_ENV=production still give one room."""
    server = servers[how]
    arguments, env = SEVERAL_PROCESSES[how]
    asked = " ".join(arguments) or " ".join(f"{k}={v}" for k, v in env.items())
    # Each hears its own new name, so the process that holds it has counted it. (Its
    # new name only: over Redis, a newcomer may hear an earlier "joined" first.)
    names = {f"Seat{number}" for number in range(SPLIT_ROOM_PROBE)}
    for name in sorted(names):
        client, _ = join(server.connect)
        client.rename(name)
        client.wait_for_system(f" is now known as {name}")
    listed = set(online(server))
    assert names <= listed, (
        f"Started with {asked}, {len(names)} participants joined, but GET /users lists "
        f"{len(listed & names)} of them: several processes each keep their own room in "
        "memory, and each participant lands in one of them. Pin one with "
        "app.run(..., workers=1)."
    )
    server.close_clients()


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
def test_a_pong_reaches_nobody(heartbeat):
    """A pong only tells the server that its sender is there: nobody else hears it, and
    nobody gets an error for it."""
    pair = [heartbeat.connect(), heartbeat.connect()]
    try:
        for _ in range(2):  # two rounds of pings, each answered as the page does
            for client in pair:
                client.wait_for(lambda m: m.get("type") == "ping", "the next ping")
                client.send_json({"type": "pong"})
        mark = len(pair[0].received)
        meanwhile = pair[0].sync()  # its pongs are handled, and so were the other's
        seen = pair[0].received[:mark] + meanwhile + pair[1].received
        heard = [m for m in seen if m.get("type") not in ("ping", "system")]
        assert not heard, (
            f"Answering pings with pongs, the participants received {heard[:3]}. A "
            "pong's only job is to arrive: the handler skips it with `continue`, and "
            'messages.py accepts {"type": "pong"}.'
        )
    finally:
        heartbeat.close_clients()


@pytest.mark.guide("step7.md#heartbeat")
def test_a_participant_who_vanished_is_announced_as_left(heartbeat):
    """A silent connection (no pong to the pings: a closed laptop) is taken out of the
    room and announced; one that answers every ping stays."""
    alive = heartbeat.connect()
    alive.rename("Alive")
    alive.wait_for_system("is now known as Alive")
    # Neither reads nor answers, as a vanished laptop.
    vanished, name = join_raw(heartbeat)
    try:
        gone = f"{name} left the chat"
        limit = 3 + 6 * float(HEARTBEAT_SECONDS)
        deadline = time.monotonic() + limit
        while not any(m.get("message") == gone for m in alive.received):
            try:
                message = alive.wait_for(
                    lambda m: m.get("type") in ("ping", "system", "error"),
                    f'"{gone}"',
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
                    f'heard "{gone}". A vanished laptop never closes its connection: '
                    "wait for each message at most SILENCE_LIMIT_SECONDS "
                    "(ws.recv(timeout=...))."
                ) from None
            if message["type"] == "error":
                raise AssertionError(
                    f"Alive's pong was refused: {message['message']} "
                    'parse_message must accept {"type": "pong"} (messages.py).'
                )
            if message["type"] == "ping":
                alive.send_json({"type": "pong"})  # what the page does
        said = [m.get("message") for m in alive.received]
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
    heartbeat starts in the `if __name__ == "__main__":` block."""
    probe = (
        "import runpy, sys, threading; sys.path.insert(0, sys.argv[1]); "
        "app = runpy.run_path(sys.argv[1] + '/app.py', run_name='chat_app'); "
        "print('heartbeat_loop' in app); "
        "print(sorted(t.name for t in threading.enumerate() if t is not "
        "threading.main_thread()))"
    )
    try:
        found = subprocess.run(
            [sys.executable, "-c", probe, str(app_dir)],
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS * 3,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"Importing app.py did not finish within {WAIT_SECONDS * 3:g} s: does "
            "something at module level wait, or run the server?"
        ) from None
    assert found.returncode == 0, f"Importing app.py failed:\n{found.stderr[-1500:]}"
    has_heartbeat, started = found.stdout.strip().splitlines()[-2:]
    assert has_heartbeat == "True", (
        "app.py has no heartbeat_loop() yet (part 3 of the TODOs)."
    )
    assert started == "[]", (
        f"Importing app.py started threads: {started}. Start the heartbeat in the "
        '`if __name__ == "__main__":` block: a module that starts threads when '
        "imported pings a room that does not exist (in the checks, in a test runner, "
        "in a REPL)."
    )


@pytest.mark.crowd
@pytest.mark.guide("step7.md#a-whole-room")
def test_a_room_of_300_all_hear_a_message(server):
    """300 participants (Cello's pool has 64 threads) all join and hear a message."""
    a_room_hears(
        server,
        ROOM,
        "A `def` handler holds one of the pool's threads for as long as its "
        "participant stays, and Cello's pool has 64: "
        "app.set_threadpool(ThreadPoolConfig(size=ROOM_SIZE)), before app.run.",
    )


@pytest.mark.guide("step7.md#heartbeat")
@pytest.mark.skipif(os.name == "nt", reason="Ctrl-C cannot be sent this way on Windows")
def test_ctrl_c_stops_python_app_py(server):
    """Ctrl-C stops `python app.py` within a few seconds, heartbeat and all."""
    os.killpg(server.process.pid, signal.SIGINT)
    try:
        server.process.wait(timeout=CTRL_C_SECONDS)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"`python app.py` still runs {CTRL_C_SECONDS:g} s after Ctrl-C. Python "
            "waits for every thread that is not a daemon before it exits, and the "
            "heartbeat loops forever: start it with threading.Thread(..., daemon=True)."
        ) from None
