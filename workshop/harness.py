"""The test harness every step's checks use: a real server on a free port, and chat clients that read like prose.

Cello 1.4.1 has no test client, so each check starts the step's app as a real process (through the same
runner as `make step N`), waits until it accepts connections, and talks to it with the `websockets` client
and plain HTTP. Every wait is a wait for an event (a message, an open port) with a deadline, never a sleep.
"""

import base64
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as websocket_connect

from workshop import processes, redis_server
from workshop.ports import free_port
from workshop.steps import ROOT

STARTUP_SECONDS = 15
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# How long a check waits for an event. Generous for a loaded laptop; the repository checks lower it where
# they expect the wait to fail (an unfinished starter), to keep `make test` fast.
WAIT_SECONDS = float(os.environ.get("CHECK_WAIT_SECONDS", "3"))


class ChatServer:
    """One running chat app. Stop it with `.stop()` (the fixtures do)."""

    def __init__(
        self,
        app_dir: Path,
        command: list[str],
        env: dict | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
    ):
        self.app_dir = Path(app_dir)
        self.host = host  # 127.0.0.2 plays another machine (scale.md#machines)
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.ws_url = f"ws://{host}:{self.port}/ws/chat"
        # A file, not a pipe: a server that logs a lot must never block on a full pipe nobody reads.
        self._log = tempfile.NamedTemporaryFile(
            prefix="chat-server-", suffix=".log", delete=False
        )
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
        environment.pop("CELLO_ENV", None)  # production mode forks one process per CPU
        # Its own chat history (chapter history.md), in a folder deleted with this object: each check starts
        # from an empty room.
        self._history_folder = tempfile.TemporaryDirectory(prefix="chat-history-")
        environment["CHAT_HISTORY"] = str(
            Path(self._history_folder.name) / "chat-history.db"
        )
        environment.update(env or {})
        # The scale chapter's app talks to Redis: one of its own unless the check gives one.
        self.redis = redis_server.for_a_check(self.app_dir, env or {})
        if self.redis is not None:
            environment["REDIS_URL"] = self.redis.url
        self.process = subprocess.Popen(
            [part.replace("{port}", str(self.port)) for part in command],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # so stop() can end the server and anything it started
        )
        self._clients: list[ChatClient] = []
        self._final_output: str | None = None  # kept once stopped, its log deleted

    def wait_until_accepting(self, timeout: float = STARTUP_SECONDS) -> "ChatServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                printed = (
                    self.output_tail() if self.output().strip() else "    (nothing)"
                )
                hint = (
                    "\nA clean exit without serving means app.py never called app.run(): "
                    'does it end with an `if __name__ == "__main__":` block that does?'
                    if self.process.returncode == 0
                    else ""
                )
                raise AssertionError(
                    f"The server in {self.app_dir.relative_to(ROOT) if self.app_dir.is_relative_to(ROOT) else self.app_dir} "
                    f"stopped before it accepted connections (exit status {self.process.returncode}). "
                    f"It printed:\n{printed}{hint}"
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise AssertionError(
            f"The server in {self.app_dir} did not accept connections within {timeout} s."
        )

    # --- HTTP -------------------------------------------------------------------------------------------------
    def get(self, path: str) -> tuple[int, dict, str]:
        """(status, headers, body text) of GET path; an HTTP error status is returned, not raised."""
        try:
            with urllib.request.urlopen(
                self.url + path, timeout=WAIT_SECONDS
            ) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return (
                error.code,
                dict(error.headers),
                error.read().decode(errors="replace"),
            )

    def get_json(self, path: str):
        status, _, body = self.get(path)
        assert status == 200, (
            f"GET {path} answered {status} instead of 200: {body[:300]}"
        )
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            raise AssertionError(
                f"GET {path} should answer JSON, but answered: {body[:300]}"
            ) from None

    def request(
        self,
        method: str,
        path: str,
        body: str | bytes | None = None,
        headers: dict | None = None,
    ) -> tuple[int, dict, str]:
        """(status, headers with lower-case names, body text) of any request. Redirects
        are returned, not followed; an HTTP error status is returned, not raised."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=WAIT_SECONDS
        )
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
        except OSError as error:
            raise AssertionError(f"{method} {path} got no answer: {error}") from None
        finally:
            connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    # --- WebSocket clients -------------------------------------------------------------------------------------
    def connect(
        self,
        path: str = "/ws/chat",
        headers: dict | None = None,
        source: str | None = None,
    ) -> "ChatClient":
        """A new participant; `headers` go with the upgrade request (a login's cookie),
        source="127.0.0.2" connects from another loopback address."""
        client = ChatClient(
            self.url.replace("http", "ws", 1) + path, headers=headers, source=source
        )
        self._clients.append(client)
        return client

    def refusal(
        self, headers: dict | None = None, path: str = "/ws/chat"
    ) -> tuple[int, str] | None:
        """(status, body) with which the server refuses a WebSocket upgrade carrying these
        headers; None if it lets the connection in (which is then closed at once)."""
        try:
            websocket_connect(
                self.url.replace("http", "ws", 1) + path,
                additional_headers=headers,
                open_timeout=WAIT_SECONDS,
                legacy=True,
            ).close()
        except InvalidStatus as refused:
            response = refused.response
            return response.status_code, bytes(response.body or b"").decode(
                errors="replace"
            )
        return None

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()

    # --- life cycle --------------------------------------------------------------------------------------------
    def output(self) -> str:
        if self._final_output is not None:  # stopped: its log file is gone
            return self._final_output
        return Path(self._log.name).read_text(errors="replace")

    def output_tail(self, lines: int = 15) -> str:
        # Cello's banner is coloured for a terminal.
        plain = ANSI_ESCAPE.sub("", self.output())
        return "\n".join("    " + line for line in plain.splitlines()[-lines:])

    def stop(self) -> None:
        self.close_clients()
        processes.stop(self.process)  # Ctrl-C, as a learner would, then kill
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self._final_output is None:
            self._final_output = self.output()
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def start_server(
    app_dir: Path,
    env: dict | None = None,
    direct: bool = False,
    port: int | None = None,
    host: str = "127.0.0.1",
) -> ChatServer:
    """Start app_dir's app on a free port: through `workshop.serve` (as `make step N` does), or with
    `direct=True` as `python app.py --port P` (step 7's own entry point). `port=` restarts a stopped
    server where its clients (a browser tab that reconnects) will look for it."""
    app_dir = Path(app_dir).resolve()
    if direct:
        command = [
            sys.executable,
            str(app_dir / "app.py"),
            "--host",
            host,
            "--port",
            "{port}",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "workshop.serve",
            str(app_dir),
            "--host",
            host,
            "--port",
            "{port}",
        ]
    server = ChatServer(app_dir, command, env, port, host)
    try:
        return server.wait_until_accepting()
    except BaseException:  # a Ctrl-C during the wait too: never leave a server behind
        server.stop()
        raise


def describe(messages: list) -> str:
    if not messages:
        return "nothing"
    return ", ".join(
        json.dumps(message) if not isinstance(message, str) else repr(message)
        for message in messages[-8:]
    )


class ChatClient:
    """A chat participant: a real WebSocket connection plus the messages it has received so far."""

    def __init__(
        self, url: str, headers: dict | None = None, source: str | None = None
    ):
        try:
            # max_queue=None: keep reading frames even when the test has not consumed them yet; a client with a
            # full queue stops reading the socket and would only notice the server's close after close_timeout.
            self.connection = websocket_connect(
                url,
                additional_headers=headers,
                open_timeout=WAIT_SECONDS,
                max_size=None,
                max_queue=None,
                close_timeout=1,
                legacy=True,
                # Passed on to socket.create_connection: the address to connect from.
                source_address=(source, 0) if source else None,
            )
        except Exception as error:
            raise AssertionError(
                f"Could not open a WebSocket at {url}: {error}"
            ) from None
        self.received: list = []  # every message so far, in order (decoded JSON where it was JSON)
        self._unread = (
            0  # index into received of the first message no wait has consumed yet
        )
        self.closed_reason: str | None = None

    # --- sending -----------------------------------------------------------------------------------------------
    def send_json(self, payload) -> None:
        self.connection.send(json.dumps(payload))

    def send_text(self, text: str) -> None:
        self.connection.send(text)

    def send_bytes(self, data: bytes) -> None:
        self.connection.send(data)

    def say(self, message: str) -> None:
        self.send_json({"type": "chat", "message": message})

    def rename(self, name: str) -> None:
        self.send_json({"type": "set_name", "name": name})

    # --- receiving ---------------------------------------------------------------------------------------------
    def _receive_one(self, deadline: float):
        """The next message, or None at the deadline. Raises AssertionError if the server closed the connection."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            raw = self.connection.recv(timeout=remaining)
        except TimeoutError:
            return None
        except ConnectionClosed as closed:
            self.closed_reason = f"code {closed.rcvd.code if closed.rcvd else 'none (connection dropped)'}"
            raise
        try:
            message = json.loads(raw)
        except (TypeError, json.JSONDecodeError):
            message = raw
        self.received.append(message)
        return message

    def wait_for(self, matches, what: str, timeout: float = WAIT_SECONDS):
        """The first unread message for which matches(message) is true; earlier unread ones are passed over."""
        deadline = time.monotonic() + timeout
        while True:
            while self._unread < len(self.received):
                message = self.received[self._unread]
                self._unread += 1
                if isinstance(message, dict) and matches(message):
                    return message
            try:
                message = self._receive_one(deadline)
            except ConnectionClosed:
                raise AssertionError(
                    f"The server closed the connection ({self.closed_reason}) while this client waited for {what}. "
                    f"It had received: {describe(self.received)}"
                ) from None
            if message is None:
                raise AssertionError(
                    f"Waited {timeout:g} s for {what}, but received: {describe(self.received)}"
                )

    def wait_for_system(self, text: str, timeout: float = WAIT_SECONDS) -> dict:
        return self.wait_for(
            lambda m: m.get("type") == "system" and text in str(m.get("message")),
            f'a system message containing "{text}"',
            timeout,
        )

    def wait_for_chat(
        self, username: str, message: str, timeout: float = WAIT_SECONDS
    ) -> dict:
        return self.wait_for(
            lambda m: (
                m.get("type") == "chat"
                and m.get("username") == username
                and m.get("message") == message
            ),
            f'the chat message {{"username": "{username}", "message": "{message[:40]}"}}',
            timeout,
        )

    def expect_error(self, after: str, timeout: float = WAIT_SECONDS) -> dict:
        """The next error message; `after` says what the client sent, for the failure message."""
        error = self.wait_for(
            lambda m: m.get("type") == "error",
            f'{{"type": "error", ...}} after {after}',
            timeout,
        )
        assert isinstance(error.get("message"), str) and error["message"].strip(), (
            f'An error message needs a "message" that says what was wrong; after {after} the server sent {error}'
        )
        return error

    def sync(self, timeout: float = WAIT_SECONDS) -> list:
        """Wait until the server has handled everything this client sent; return what arrived meanwhile.

        Sends a message that always gets an error back (a JSON array). The server handles one connection's
        messages in order, so once that error is back, everything earlier sends caused for this client has
        arrived too: a wait for an event, not a sleep. Only for a client whose earlier sends cause no error.
        """
        self.unread()
        start = len(self.received)
        self.send_json(["sync-probe"])
        self.expect_error(
            after="a JSON array (the checks' sync probe)", timeout=timeout
        )
        return self.received[start : self._unread - 1]

    def unread(self) -> list:
        messages = self.received[self._unread :]
        self._unread = len(self.received)
        return messages

    def close(self) -> None:
        self.connection.close()


def eventually(check, what: str, timeout: float = WAIT_SECONDS):
    """Poll check() until it returns something truthy; for state only visible by asking (GET /users)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"Waited {timeout:g} s for {what}.")
        time.sleep(0.02)


def join(connect) -> tuple[ChatClient, str]:
    """A new participant, and the default name its own "<name> joined the chat" announcement gave it."""
    client = connect()
    joined = client.wait_for_system("joined the chat")
    return client, joined["message"].removesuffix(" joined the chat")


def need(module, name: str, hint: str):
    """module.name, or a check failure that says what to write."""
    assert hasattr(module, name), f"app.py has no `{name}` yet. {hint}"
    return getattr(module, name)


class RawParticipant:
    """A bare WebSocket connection that reads only when told to: a participant who stopped
    reading, or whose laptop vanished, or just a cheap member of a big audience."""

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
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.data = b""
        while b"\r\n\r\n" not in self.data:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(
                    "The server closed a new connection during its handshake."
                )
            self.data += chunk
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0]
        assert b" 101 " in status, f"The WebSocket handshake failed: {status[:200]!r}"

    def say(self, text: str) -> None:
        """A masked text frame (clients must mask; an all-zero mask leaves it as it is)."""
        payload = json.dumps({"type": "chat", "message": text}).encode()
        assert len(payload) < 126
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)

    def heard(self, text: str, deadline: float) -> bool:
        """Whether `text` arrives (in any frame) before the deadline; reads all up to it."""
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
            self.data = self.data[-len(wanted) :] + chunk
        return True

    def close(self) -> None:
        self.sock.close()


def allow_open_sockets(count: int) -> None:
    """Each socket is an open file: macOS allows 256 per process. Raise our soft limit."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count + 100, hard), hard))


def online(server: ChatServer) -> list[str]:
    """The names GET /users lists."""
    return server.get_json("/users")["users"]


def join_raw(server: ChatServer, receive_buffer: int | None = None):
    """A RawParticipant and the name the room gave it (it reads nothing: GET /users tells)."""
    before = set(online(server))
    participant = RawParticipant(server, receive_buffer)
    joined = eventually(
        lambda: set(online(server)) - before, "GET /users to list a newcomer"
    )
    return participant, joined.pop()


def a_room_hears(server: ChatServer, size: int, why: str) -> None:
    """`size` participants join; the last one speaks, and every one of them must hear it."""
    allow_open_sockets(size)
    room = []
    try:
        for _ in range(size):
            room.append(RawParticipant(server))
        try:
            eventually(lambda: server.get_json("/users")["count"] == size, "")
        except AssertionError:
            counted = server.get_json("/users")["count"]
            raise AssertionError(
                f"{size} participants connected, but GET /users counts {counted}. {why}"
            ) from None
        room[-1].say("can the back row hear me?")
        deadline = time.monotonic() + WAIT_SECONDS
        deaf = [
            number
            for number, member in enumerate(room, 1)
            if not member.heard("can the back row hear me?", deadline)
        ]
        assert not deaf, (
            f"{len(deaf)} of {size} participants never heard the message "
            f"(the first: number {deaf[0]}). {why}"
        )
    finally:
        for member in room:
            member.close()
