"""Step 7 checks: `python app.py` runs the chat, for a whole room, with a heartbeat.  Run: pytest steps/step7"""

import pytest

from workshop.harness import start_server

HEARTBEAT_SECONDS = "0.2"  # the checks' own interval: the real default (30 s) is too slow to wait for


@pytest.fixture(scope="module")
def server(app_dir):
    """The app started as `python app.py --host 127.0.0.1 --port P`, the way step 7 runs it."""
    running = start_server(app_dir, env={"CHAT_HEARTBEAT_SECONDS": HEARTBEAT_SECONDS}, direct=True)
    yield running
    running.stop()


@pytest.mark.guide("step7.md#run-it")
def test_python_app_py_starts_the_server(server):
    """`python app.py --port P` starts the chat on port P (Cello reads --host and --port)."""
    online = server.get_json("/users")
    assert online.get("count") == 0, f"A fresh server should have nobody online, but /users says {online}."


@pytest.mark.guide("step7.md#heartbeat")
def test_the_heartbeat_pings_every_participant(connect):
    """Every participant receives {"type": "ping"} every CHAT_HEARTBEAT_SECONDS."""
    first, second = connect(), connect()
    for client in (first, second):
        client.wait_for(lambda m: m.get("type") == "ping", f'{{"type": "ping"}} (heartbeat every {HEARTBEAT_SECONDS} s)')


@pytest.mark.guide("step7.md#a-whole-room")
def test_a_room_larger_than_the_thread_pool_is_served(connect):
    """100 participants (more than Cello's default 64 handler threads) all join and all hear a message."""
    room = [connect() for _ in range(100)]
    last = room[-1].wait_for_system("joined the chat", timeout=5)
    room[-1].say("can the back row hear me?")
    speaker = last["message"].removesuffix(" joined the chat")
    for number, client in enumerate(room):
        try:
            client.wait_for_chat(speaker, "can the back row hear me?")
        except AssertionError:
            raise AssertionError(
                f"Participant {number + 1} of 100 never heard the message. Each `def` handler holds one of the "
                "64 threads of Cello's default pool while its participant is connected: size the pool."
            ) from None
