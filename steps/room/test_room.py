"""Chapter "Hold a whole room" checks: a crowd, and a participant who stops reading.

Run: pytest steps/room

Each check starts the app as `python app.py --host 127.0.0.1 --port P`; for the one who
stops reading, the time after which a blocked send gives up on them is shortened through
the environment.
"""

import inspect

import pytest

from workshop.harness import (
    CheckFailure,
    a_room_hears,
    join_raw,
    online,
    start_server,
)

ROOM = 600  # more than step 7's pool of 500: only an `async def` handler holds them
# Lifts the later guard chapter's rate limit: the checks chat fast.
FAST = {"CHAT_MESSAGES_PER_SECOND": "1000000"}


@pytest.fixture(scope="module")
def server(app_dir):
    """The app as `python app.py --port P`, with its own send timeout (5 s): on a busy
    machine a crowd's sends may wait a few tenths of a second for a CPU."""
    running = start_server(app_dir, env=FAST, direct=True)
    yield running
    running.stop()


@pytest.fixture
def quick_to_give_up(app_dir):
    """The app, giving up on a staller after 0.3 s instead of 5 (the guide's
    room.md#check-yourself)."""
    env = {**FAST, "CHAT_SEND_TIMEOUT_SECONDS": "0.3"}
    running = start_server(app_dir, env=env, direct=True)
    yield running
    running.stop()


@pytest.mark.crowd
@pytest.mark.guide("room.md#async-handler")
def test_a_room_larger_than_any_thread_pool_is_served(server):
    """600 participants all join and all hear a message: waiting holds no thread."""
    a_room_hears(
        server,
        ROOM,
        "A `def` handler holds a pool thread for as long as its participant stays; an "
        "`async def` handler waiting in `await ws.arecv(...)` holds none.",
        nobody=CheckFailure(
            f"All {ROOM} participants joined, but not one heard the message, not even "
            "its sender: everything goes out through each participant's outbox, so "
            "add_client must keep it in `outboxes`.",
            read="room.md#outboxes",
        ),
        together=ROOM,  # coroutines let a crowd in at once (docs/performance.md#crowds)
    )


@pytest.mark.guide("room.md#async-handler")
def test_bad_input_still_gets_an_error_back(server, chat_module):
    """Bad input still gets its error back: the coroutine sends it through the outbox,
    never with the blocking ws.send_text."""
    # A `def` handler may call send_text: only a coroutine can get this wrong.
    assert inspect.iscoroutinefunction(chat_module.chat_handler), (
        "chat_handler is still a `def`: make it `async def`, waiting with "
        "`await ws.arecv(timeout=SILENCE_LIMIT_SECONDS)`."
    )
    client = server.connect()
    try:
        client.wait_for_system("joined the chat")
        client.send_text("[1, 2]")
        client.expect_error(after="a JSON array")
    finally:
        server.close_clients()


@pytest.mark.crowd
@pytest.mark.guide("room.md#outboxes")
def test_a_participant_who_stops_reading_cannot_freeze_the_room(quick_to_give_up):
    """Someone stops reading: the others keep chatting, and the staller is disconnected
    and announced as left, once."""
    server = quick_to_give_up
    observer, chatter = server.connect(), server.connect()
    observer.rename("Observer")
    chatter.rename("Chatter")
    chatter.wait_for_system("is now known as Observer")
    observer.wait_for_system("is now known as Chatter")  # both names settled first
    staller, staller_name = join_raw(server, receive_buffer=4096)  # never reads a byte
    gone = f"{staller_name} left the chat"
    # Big messages fill the staller's buffers (a few MB) sooner: 1,900 characters, each
    # sent as 6 bytes (JSON writes a euro sign as \u20ac), 11 KB a message.
    filler = "\u20ac" * 1900
    sent = 0
    try:
        # Chat until the server gives up on the staller (22 MB at most). After each
        # batch the observer must hear its last message: the room keeps flowing.
        while not any(
            isinstance(m, dict) and m.get("message") == gone for m in observer.received
        ):
            if sent >= 2_000:
                # A fast machine sends all 22 MB before the 0.3 s give-up runs out.
                try:
                    observer.wait_for_system(gone)
                except AssertionError:
                    raise AssertionError(
                        f"{sent} messages (22 MB) later, {staller_name}, who reads "
                        "nothing, was still not announced as left: one who falls too "
                        "far behind must be dropped."
                    ) from None
                break
            for _ in range(80):
                chatter.say(f"{sent} {filler}")
                sent += 1
            last = f"{sent - 1} "
            try:
                observer.wait_for(
                    lambda m, last=last: (
                        m.get("type") == "chat" and m["message"].startswith(last)
                    ),
                    "",
                )
            except AssertionError:
                heard = sum(
                    m.get("type") == "chat"
                    for m in observer.received
                    if isinstance(m, dict)
                )
                raise AssertionError(
                    f"The room froze: of the chatter's {sent} messages the observer "
                    f"heard {heard}, then nothing. Sending to {staller_name}, who "
                    "stopped reading, blocks once a few MB wait for them, and a "
                    "broadcast that sends to each in turn waits there: queue each "
                    "participant's messages in an Outbox."
                ) from None
        # The chatter's only: with a history (chapter history) the observer sees more.
        chats = [
            m
            for m in observer.received
            if isinstance(m, dict)
            and m.get("type") == "chat"
            and m.get("username") == "Chatter"
        ]
        heard = [int(m["message"].split()[0]) for m in chats]
        assert heard == list(range(sent)), (
            f"The observer heard {len(heard)} of the chatter's {sent} messages, or out "
            "of order."
        )
        # Now its handler sees the connection end too, and calls leave() a second time.
        staller.close()
        try:
            second = observer.never_hears(
                lambda m: m.get("message") == gone, f'a second "{gone}"', seconds=1
            )
        except AssertionError as problem:
            raise CheckFailure(str(problem), read="room.md#leave-once") from None
        if second is not None:
            raise CheckFailure(
                f'"{gone}" was announced twice: its outbox and its handler both end a '
                "participant, and leave() must let only the first one announce it "
                "(the handler's `finally` calls leave(ws_id), nothing else).",
                read="room.md#leave-once",
            )
    finally:
        staller.close()
    assert staller_name not in online(server), (
        f"{staller_name} left, but /users still lists them."
    )
