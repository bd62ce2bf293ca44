"""Step 7 checks: `python app.py` runs the chat, and it holds a whole classroom.  Run: pytest steps/step7

Each check starts the app the way this step runs it, `python app.py --host 127.0.0.1 --port P`, with
settings shortened for the checks through environment variables (a 30-second heartbeat is too slow to wait for).
"""

import base64
import os
import socket
import sys
import time

import pytest

from workshop.harness import WAIT_SECONDS, ChatServer, eventually, start_server

HEARTBEAT_SECONDS = "0.2"  # the app's default is 30 s; the silence limit is then the app's minimum, 1 s
SEND_TIMEOUT_SECONDS = "0.3"  # how long a send may block before its participant counts as gone (5 s by default)
ROOM = 200  # participants in the capacity check: far more than Cello's 64 handler threads


@pytest.fixture(scope="module")
def server(app_dir):
    """The app as `python app.py --host 127.0.0.1 --port P`, with its own settings."""
    running = start_server(app_dir, env={"CHAT_SEND_TIMEOUT_SECONDS": SEND_TIMEOUT_SECONDS}, direct=True)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def unthrottled(app_dir):
    """The app with its rate limit lifted, for checks that must push a lot of messages through quickly."""
    env = {"CHAT_SEND_TIMEOUT_SECONDS": SEND_TIMEOUT_SECONDS, "CHAT_MESSAGES_PER_SECOND": "1000000"}
    running = start_server(app_dir, env=env, direct=True)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def heartbeat(app_dir):
    """The app with a heartbeat every HEARTBEAT_SECONDS."""
    running = start_server(app_dir, env={"CHAT_HEARTBEAT_SECONDS": HEARTBEAT_SECONDS}, direct=True)
    yield running
    running.stop()


class RawParticipant:
    """A bare WebSocket connection that reads only when told to: a participant who stopped reading, or
    whose laptop vanished, or just a cheap member of a big audience."""

    def __init__(self, server: ChatServer, receive_buffer: int | None = None):
        self.sock = socket.socket()
        if receive_buffer:
            # Before connect(): the buffer also decides the TCP window the server may fill.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(WAIT_SECONDS)
        self.sock.connect(("127.0.0.1", server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.data = b""
        while b"\r\n\r\n" not in self.data:
            self.data += self.sock.recv(4096)
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n")[0], f"The WebSocket handshake failed: {head[:200]!r}"

    def say(self, text: str) -> None:
        """A masked text frame (clients must mask; an all-zero mask leaves the payload as it is)."""
        payload = ('{"type": "chat", "message": "%s"}' % text).encode()
        assert len(payload) < 126
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)

    def heard(self, text: str, deadline: float) -> bool:
        """Whether `text` arrives (in any frame) before the deadline; reads everything up to it."""
        wanted = text.encode()
        while wanted not in self.data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, OSError):
                return False
            if not chunk:
                return False
            self.data = self.data[-len(wanted):] + chunk
        return True

    def close(self) -> None:
        self.sock.close()


def allow_open_sockets(count: int) -> None:
    """Each socket is an open file: macOS allows 256 per process by default. Raise our own soft limit."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count + 100, hard), hard))


def join_raw(server, receive_buffer: int | None = None) -> tuple[RawParticipant, str]:
    """A RawParticipant and the name the room gave it (it reads nothing, so GET /users tells)."""
    before = set(users(server))
    participant = RawParticipant(server, receive_buffer)
    joined = eventually(lambda: set(users(server)) - before, "GET /users to list the new participant")
    return participant, joined.pop()


def users(server) -> list[str]:
    return server.get_json("/users")["users"]


@pytest.mark.guide("step7.md#run-it")
def test_python_app_py_starts_the_server(server):
    """`python app.py --port P` starts the chat on port P (Cello reads --host and --port)."""
    online = server.get_json("/users")
    assert online.get("count") == 0, f"A fresh server should have nobody online, but /users says {online}."


@pytest.mark.guide("step7.md#a-whole-room")
def test_a_room_larger_than_the_thread_pool_is_served(server):
    """200 participants (Cello's default pool has 64 handler threads) all join, and all hear a message."""
    allow_open_sockets(ROOM)
    room = []
    try:
        for _ in range(ROOM):
            room.append(RawParticipant(server))
        why = (
            "A `def` handler holds one of the 64 threads of Cello's default pool for as long as its participant "
            "stays; an `async def` handler waiting with `await ws.arecv()` holds none."
        )
        try:
            eventually(lambda: server.get_json("/users")["count"] == ROOM, "")
        except AssertionError:
            counted = server.get_json("/users")["count"]
            raise AssertionError(f"{ROOM} participants connected, but GET /users counts {counted}. {why}") from None
        room[-1].say("can the back row hear me?")
        deadline = time.monotonic() + WAIT_SECONDS
        deaf = [number for number, member in enumerate(room, 1) if not member.heard("can the back row hear me?", deadline)]
        assert not deaf, f"{len(deaf)} of {ROOM} participants never heard the message (the first: number {deaf[0]}). {why}"
    finally:
        for member in room:
            member.close()


@pytest.mark.guide("step7.md#a-whole-room")
def test_a_participant_who_stops_reading_cannot_freeze_the_room(unthrottled):
    """Someone stops reading: the others keep chatting, and they are disconnected and announced as left."""
    observer, chatter = unthrottled.connect(), unthrottled.connect()
    observer.rename("Observer")
    chatter.rename("Chatter")
    chatter.wait_for_system("Observer")
    staller, staller_name = join_raw(unthrottled, receive_buffer=4096)  # it will never read a byte
    gone = f"{staller_name} left the chat"
    filler = "x" * 1900  # big messages fill the staller's buffers (a few MB) sooner
    sent = 0
    try:
        # Chat until the server gives up on the staller (20 MB at most). After each batch the observer must hear
        # its last message: the room keeps flowing while the staller's buffers fill up.
        while not any(isinstance(m, dict) and m.get("message") == gone for m in observer.received):
            assert sent < 10_000, (
                f"{sent} messages (20 MB) later, {staller_name}, who reads nothing, was still not announced as "
                "left: a participant who falls too far behind must be disconnected and announced as left."
            )
            for _ in range(400):
                chatter.say(f"{sent} {filler}")
                sent += 1
            try:
                observer.wait_for(lambda m: m.get("type") == "chat" and m["message"].startswith(f"{sent - 1} "), "")
            except AssertionError:
                heard = sum(m.get("type") == "chat" for m in observer.received if isinstance(m, dict))
                raise AssertionError(
                    f"The room froze: of the chatter's {sent} messages the observer heard {heard}, then nothing "
                    f"for {WAIT_SECONDS:g} s. Sending to {staller_name}, who stopped reading, blocks once a few MB "
                    "wait for them, and a broadcast that sends to each in turn waits there. Queue each "
                    "participant's messages in their own outbox (classroom.Outbox)."
                ) from None
        heard = [int(m["message"].split()[0]) for m in observer.received if isinstance(m, dict) and m.get("type") == "chat"]
        assert heard == list(range(sent)), f"The observer heard {len(heard)} of the chatter's {sent} messages, or not in order."
    finally:
        staller.close()
    assert staller_name not in users(unthrottled), f"{staller_name} was announced as left, but /users still lists them."


@pytest.mark.guide("step7.md#heartbeat")
def test_the_heartbeat_pings_every_participant(heartbeat):
    """Every participant receives {"type": "ping"} every CHAT_HEARTBEAT_SECONDS."""
    first, second = heartbeat.connect(), heartbeat.connect()
    for client in (first, second):
        client.wait_for(lambda m: m.get("type") == "ping", f'{{"type": "ping"}} (heartbeat every {HEARTBEAT_SECONDS} s)')
    heartbeat.close_clients()


@pytest.mark.guide("step7.md#heartbeat")
def test_a_participant_who_vanished_is_announced_as_left(heartbeat):
    """A connection that goes silent (no pong to the pings: a closed laptop) is taken out of the room;
    one that answers stays."""
    alive = heartbeat.connect()
    alive.rename("Alive")
    alive.wait_for_system("is now known as Alive")
    vanished, name = join_raw(heartbeat)  # neither reads nor answers: what a vanished laptop looks like
    try:
        gone = f"{name} left the chat"
        limit = 3 + 6 * float(HEARTBEAT_SECONDS)
        deadline = time.monotonic() + limit
        while not any(isinstance(m, dict) and m.get("message") == gone for m in alive.received):
            try:
                message = alive.wait_for(lambda m: m.get("type") in ("ping", "system"), "", deadline - time.monotonic())
            except AssertionError as problem:
                if time.monotonic() < deadline:  # not a timeout: Alive itself was disconnected
                    raise AssertionError(f"Alive answered every ping with a pong, yet: {problem}") from None
                raise AssertionError(
                    f"{name} answered none of the pings for {limit:g} s, yet nobody heard \"{gone}\". A vanished "
                    "laptop never closes its connection: count each participant's messages (the page answers every "
                    "ping with a pong), and take one that stays silent too long out of the room."
                ) from None
            if message["type"] == "ping":
                alive.send_json({"type": "pong"})  # what the page does
        assert not any(isinstance(m, dict) and m.get("message") == "Alive left the chat" for m in alive.received), (
            "Alive answered every ping with a pong, yet was taken out of the room."
        )
        online = users(heartbeat)
        assert "Alive" in online and name not in online, f"/users should list Alive and not {name}: {online}"
    finally:
        vanished.close()
        heartbeat.close_clients()


@pytest.mark.guide("step7.md#a-whole-room")
def test_a_flood_is_refused_to_the_sender_and_kept_from_the_room(server):
    """40 messages at once: the sender gets an error, and the room hears no more than a burst of 10."""
    flooder, observer = server.connect(), server.connect()
    try:
        for number in range(40):
            flooder.say(f"flood {number}")
        try:
            error = flooder.expect_error(after="40 chat messages sent at once")
        except AssertionError:
            raise AssertionError(
                "40 chat messages sent at once, and no error came back: a rate limit per participant should refuse "
                "most of them, and tell the sender (classroom.RateLimit)."
            ) from None
        flooder.sync()  # the server has handled all 40
        observer.sync()  # and everything it sent the observer meanwhile has arrived
        heard = [m for m in observer.received if m.get("type") == "chat" and m["message"].startswith("flood")]
        assert 1 <= len(heard) <= 12, (
            f"The room heard {len(heard)} of the 40 flood messages; a rate limit (10 at once, then 5 a second) "
            f"should let a burst of about 10 through. The sender was told: {error['message']}"
        )
    finally:
        server.close_clients()


@pytest.mark.guide("step7.md#a-whole-room")
def test_no_message_is_lost_or_reordered_while_people_come_and_go(unthrottled):
    """A participant who stays hears every message of a talker, in order, while others join and leave."""
    stayer, talker = unthrottled.connect(), unthrottled.connect()
    talker.rename("Talker")
    stayer.wait_for_system("is now known as Talker")
    passersby = []
    try:
        for number in range(60):
            talker.say(f"#{number}")
            if number % 3 == 2:
                passersby.pop(0).close()
            else:
                passersby.append(unthrottled.connect())
        stayer.wait_for_chat("Talker", "#59")
        heard = [m["message"] for m in stayer.received if m.get("type") == "chat" and m.get("username") == "Talker"]
        assert heard == [f"#{number}" for number in range(60)], f"The stayer heard, in this order: {heard}"
        comings = sum("joined the chat" in str(m.get("message")) for m in stayer.received)
        goings = sum("left the chat" in str(m.get("message")) for m in stayer.received)
        assert comings >= 30 and goings >= 10, f"People should have come and gone meanwhile: {comings} joins, {goings} departures."
    finally:
        unthrottled.close_clients()


@pytest.mark.guide("step7.md#run-the-application")
@pytest.mark.parametrize(
    "how", [["--env", "production"], ["--workers", "2"], "CELLO_ENV=production"], ids=["env", "workers", "CELLO_ENV"]
)
def test_one_room_even_when_asked_for_several_processes(app_dir, how):
    """`--env production`, `--workers 2` or CELLO_ENV=production still give one room that everybody shares."""
    command = [sys.executable, str(app_dir / "app.py"), "--host", "127.0.0.1", "--port", "{port}"]
    env = {}
    if isinstance(how, list):
        command += how
    else:
        env["CELLO_ENV"] = "production"
    with ChatServer(app_dir, command, env).wait_until_accepting() as server:
        room = [server.connect() for _ in range(8)]
        for number, member in enumerate(room):
            member.say(f"hello from {number}")
        heard = set()
        while len(heard) < len(room):
            try:
                hello = room[0].wait_for(
                    lambda m: m.get("type") == "chat" and m["message"].startswith("hello from") and m["message"] not in heard,
                    f"the other hellos (heard {len(heard)} of {len(room)})",
                )
            except AssertionError:
                raise AssertionError(
                    f"Started with {' '.join(how) if isinstance(how, list) else how}, one participant heard {len(heard)} "
                    f"of the {len(room)} hellos. Several processes each keep their own room in memory, so participants "
                    "land in different rooms: pin one process with app.run(..., workers=1)."
                ) from None
            heard.add(hello["message"])
