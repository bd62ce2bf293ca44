"""Several machines, simulated: copies of the app on 127.0.0.2, 127.0.0.3, ... sharing one
Redis, for the scale chapter's checks (docs/scale.md#machines).

A test file loads these fixtures with `pytest_plugins = ["workshop.machines"]`. Then:

    def test_something(machines, redis_server):
        first, second = machines(2)         # python app.py --host 127.0.0.2 (and .3)
        ann, bob = first.join("Ann"), second.join("Bob")   # named, and answering pings
        ann.say("hi")
        bob.hears(ann, "hi")
        redis_server.stop()                 # an outage; .start() brings it back, empty

Loopback has many addresses on Linux, so each copy listens on an address of its own, as
on its own machine; where only 127.0.0.1 exists (macOS), they share it, on other ports.
Every process started here is stopped after the test. Without redis-server the checks
skip with the command that installs it (under CI=true they fail).
"""

import sys
import threading

import pytest

from workshop.harness import WAIT_SECONDS, ChatClient, ChatServer, stop_servers
from workshop.ports import loopback_address
from workshop.redis_server import RedisMissing, RedisServer, unavailable

ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
# The app's heartbeat in these checks (30 s in class): the silence limit is then 1.5 s.
HEARTBEAT_SECONDS = 0.5
SILENCE_LIMIT_SECONDS = 3 * HEARTBEAT_SECONDS


class Person:
    """A participant with a name of their own, on one machine."""

    def __init__(self, machine: "Machine", client: ChatClient, name: str):
        self.machine, self.client, self.name = machine, client, name

    def __str__(self) -> str:
        return f"{self.name} (on {self.machine})"

    def say(self, text: str) -> None:
        self.client.say(text)

    def hears(self, speaker: "Person", text: str, why: str = "", timeout=None) -> None:
        """Wait until this person hears `speaker` say `text`."""
        try:
            self.client.wait_for_chat(speaker.name, text, timeout or WAIT_SECONDS)
        except AssertionError:
            raise AssertionError(
                f"{self} never heard {speaker} say {text!r}. {why}".strip()
            ) from None

    def hears_all(self, said: list[tuple["Person", str]], why: str = "") -> None:
        """Wait until this person heard each (speaker, text) of `said`, in any order."""
        wanted = {(speaker.name, text) for speaker, text in said}
        if wanted <= set(self.chats()):
            return
        try:
            self.client.wait_for(lambda m: wanted <= set(self.chats()), "")
        except AssertionError:
            missing = sorted(wanted - set(self.chats()))
            raise AssertionError(
                f"{self} never heard {missing[0][0]} say {missing[0][1]!r}"
                f"{f' (nor {len(missing) - 1} more)' if len(missing) > 1 else ''}. "
                f"{why}".strip()
            ) from None

    def told(self, text: str, why: str = "", timeout=None) -> None:
        """Wait for a system message containing `text`."""
        try:
            self.client.wait_for_system(text, timeout or WAIT_SECONDS)
        except AssertionError:
            heard = [
                m["message"]
                for m in self.client.received
                if isinstance(m, dict) and m.get("type") == "system"
            ][-4:]
            raise AssertionError(
                f"{self} was never told {text!r} (the last news they had: {heard}). "
                f"{why}".strip()
            ) from None

    def chats(self) -> list[tuple]:
        """Every chat message heard so far: (who, what), in order."""
        return [
            (m.get("username"), m.get("message"))
            for m in self.client.received
            if isinstance(m, dict) and m.get("type") == "chat"
        ]

    def news(self) -> list:
        return [
            m.get("message")
            for m in self.client.received
            if isinstance(m, dict) and m.get("type") == "system"
        ]

    def leave(self) -> None:
        self.client.close()


class Machine:
    """One copy of the app on its own address: `python app.py --host A --port P`."""

    silence_limit = SILENCE_LIMIT_SECONDS

    def __init__(self, server: ChatServer, pongs: "Pongs"):
        self.server, self.pongs = server, pongs

    def __str__(self) -> str:
        host = self.server.host
        return host if host != "127.0.0.1" else f"port {self.port}"

    @property
    def port(self) -> int:
        return self.server.port

    def join(self, name: str) -> Person:
        """A new participant, renamed to `name` once the room has confirmed it."""
        client = self.server.connect()
        self.pongs.add(client)
        try:
            client.wait_for_system("joined the chat")
            client.rename(name)
            client.wait_for_system(f"is now known as {name}")
        except AssertionError as silence:
            raise AssertionError(
                f"A newcomer on {self}, to be {name}, got no answer. {silence}. The "
                "room's news goes "
                "out through Redis and comes back through the broker: does every "
                'process start it (broker.start(deliver) in @app.on_event("startup"))?'
            ) from None
        return Person(self, client, name)

    def newcomer(self) -> ChatClient:
        """A participant who keeps the default name the room gave them."""
        client = self.server.connect()
        self.pongs.add(client)
        return client

    def users(self) -> dict:
        return self.server.get_json("/users")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no goodbye, as a crashed machine."""
        self.server.process.kill()
        self.server.process.wait()


class Pongs(threading.Thread):
    """Every participant says it is there twice a heartbeat, as the page answers each
    ping: a check may last longer than the app's silence limit."""

    def __init__(self):
        super().__init__(name="pongs", daemon=True)
        self.clients: list[ChatClient] = []
        self.stopped = threading.Event()

    def add(self, client: ChatClient) -> None:
        self.clients.append(client)

    def run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS / 2):
            for client in list(self.clients):
                try:
                    client.send_json({"type": "pong"})
                except Exception:  # closed, or its machine is gone
                    self.clients.remove(client)


@pytest.fixture
def redis_server():
    """A redis-server of this check's own, on a free port; stopped after it."""
    try:
        server = RedisServer().start()
    except RedisMissing as missing:
        server, why = None, str(missing)
    if server is None:  # outside the except block: a chained traceback would hide why
        unavailable(why)
    yield server
    server.stop()


@pytest.fixture
def machines(app_dir, redis_server):
    """machines(n, *arguments) starts n copies of the app against redis_server, on
    127.0.0.2, 127.0.0.3, ...; all are stopped after the test."""
    started: list[ChatServer] = []
    pongs = Pongs()
    pongs.start()

    def start(count: int, *arguments: str) -> list[Machine]:
        env = {
            "REDIS_URL": redis_server.url,
            "CHAT_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        }
        fresh = []
        for wanted in ADDRESSES[len(started) : len(started) + count]:
            host = loopback_address(wanted)
            command = [sys.executable, str(app_dir / "app.py")]
            command += ["--host", host, "--port", "{port}", *arguments]
            fresh.append(ChatServer(app_dir, command, env, host=host))
            started.append(fresh[-1])
        for server in fresh:  # they start side by side; then each must accept
            server.wait_until_accepting()
        return [Machine(server, pongs) for server in fresh]

    yield start
    pongs.stopped.set()
    stop_servers(started)  # side by side: each may take its grace to stop
