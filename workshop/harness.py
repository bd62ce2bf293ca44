"""The test harness every step's checks use: a real server on a free port, and chat clients that read like prose.

Cello 1.4.1 has no test client, so each check starts the step's app as a real process (through the same
runner as `make step N`), waits until it accepts connections, and talks to it with the `websockets` client
and plain HTTP. Every wait is a wait for an event (a message, an open port) with a deadline, never a sleep.
"""

import base64
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as websocket_connect

from workshop import diagnoses, launcher, processes, redis_server
from workshop.ports import listeners, reserve_port
from workshop.steps import ROOT

STARTUP_SECONDS = 15
# After Ctrl-C, a server gets this long to stop before it is killed (one stuck on a lock never
# stops by itself, and a learner's failing run should not wait for it).
STOP_SECONDS = 2
# How often a server started on a free port moves on when another took the same port.
MOVES = 3
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# How long a check waits for an event. Generous for a loaded laptop; the repository checks lower it where
# they expect the wait to fail (an unfinished starter), to keep `make test` fast.
WAIT_SECONDS = float(os.environ.get("CHECK_WAIT_SECONDS", "3"))
# Put first on every server's PYTHONPATH: its sitecustomize lets a check see where a hung server
# waits, and shorten the interpreter's thread switches to make a race happen (diagnoses.py).
SERVER_SITE = Path(__file__).with_name("server_site")
# A browser check's wait polls the page every 25 ms: Playwright's default polls on every
# animation frame, so a waiting tab draws 60 frames a second (performance.md#make-test).
POLL_MS = 25
# How often a wait looks at the server's log for an error while nothing arrives.
LOG_POLL_SECONDS = 0.05
# After this long without a message, a wait looks at where the server's threads are.
SILENCE_BEFORE_A_LOOK = 0.4


class CheckFailure(AssertionError):
    """A check's failure that names the guide section explaining it, when that is another
    section than the check's own (a lock taken twice is explained in step 2 whatever the step)."""

    def __init__(self, message: str, read: str | None = None):
        super().__init__(message)
        self.read = read


class LockTakenTwice(CheckFailure):
    """The code waits for a lock its own thread holds: it never moves again, so
    pytest_plugin.py runs none of the app's other checks."""

    def __init__(self, message: str):
        super().__init__(message, read=diagnoses.LOCK_TAKEN_TWICE)


# Seconds this run's checks have spent waiting for events that never came (pytest_plugin.py
# stops running checks once they add up to CHECK_GIVE_UP_SECONDS: the rest would wait too).
waited_in_vain = [0.0]


def gave_up_waiting(seconds: float) -> None:
    waited_in_vain[0] += seconds


def server_environment() -> dict[str, str]:
    """What every server's environment starts from."""
    environment = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(SERVER_SITE), str(ROOT)]),
    }
    environment.pop("CELLO_ENV", None)  # production mode forks one process per CPU
    return environment


def warm_up() -> None:
    """Start what starts the servers (launcher.py) in the background, while pytest
    collects the checks: the first server then starts as fast as the next."""
    threading.Thread(
        target=launcher.prepare, args=(server_environment(),), daemon=True
    ).start()


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
        self._moves = 0 if port is None else MOVES  # a port it was given, it keeps
        # Holds a port picked here until the server listens (ports.reserve_port).
        self._reservation: socket.socket | None = None
        self._take_port(port or self._reserve())
        # A file, not a pipe: a server that logs a lot must never block on a full pipe nobody reads.
        self._log = tempfile.NamedTemporaryFile(
            prefix="chat-server-", suffix=".log", delete=False
        )
        self._stacks = Path(self._log.name).with_suffix(".stacks")
        environment = server_environment()
        environment["WORKSHOP_STACKS_FILE"] = str(self._stacks)
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
        self._command, self._environment = command, environment
        self._launch()
        self._clients: list[ChatClient] = []
        self._final_output: str | None = None  # kept once stopped, its log deleted
        # Where in its output the current check began (pytest_plugin.py sets it).
        self.check_start = 0
        self.reported = 0  # problems already quoted in a failure
        self.accepted = False  # it accepted connections once
        ChatServer.started.append(self)

    # Every server started in this process, until the end of the check that stopped it: the
    # plugin fails a check during which one of them logged an error.
    started: list["ChatServer"] = []

    def _reserve(self) -> int:
        port, self._reservation = reserve_port(self.host)
        return port

    def _release_port(self) -> None:
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None

    def _take_port(self, port: int) -> None:
        self.port = port
        self.url = f"http://{self.host}:{port}"
        self.ws_url = f"ws://{self.host}:{port}/ws/chat"

    def _launch(self) -> None:
        command = [part.replace("{port}", str(self.port)) for part in self._command]
        # A fork of a process that has imported Cello already, where it can (launcher.py).
        self.process = (
            launcher.launch(command, ROOT, self._environment, self._log.fileno())
            or subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self._environment,
                start_new_session=True,  # so stop() can end the server and anything it started
            )
        )

    def _shares_its_port(self) -> bool:
        """Another process listens on this port too: it picked the same free port meanwhile,
        and Cello shares a port without a word (workshop/ports.py)."""
        ours = {p.pid for p in processes.with_descendants(self.process.pid)}
        return any(pid not in ours for pid in listeners(self.port))

    def _move(self) -> None:
        """Start again on another free port."""
        self._moves += 1
        processes.stop(self.process, grace=STOP_SECONDS)
        self._release_port()
        self._take_port(self._reserve())
        self._launch()

    def wait_until_accepting(self, timeout: float = STARTUP_SECONDS) -> "ChatServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self.process.poll() is not None
                and self._moves < MOVES
                and listeners(self.port)
            ):
                self._move()  # `workshop.serve` refuses a busy port (it took it meanwhile)
                deadline = time.monotonic() + timeout
                continue
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
            except OSError:
                time.sleep(0.02)
                continue
            # Held until now, its port was nobody else's; else ask who listens there.
            if self._reservation is not None:
                self._release_port()
            elif self._moves < MOVES and self._shares_its_port():
                self._move()  # half its connections would reach the other server
                deadline = time.monotonic() + timeout
                continue
            self.accepted = True
            return self
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
        except (OSError, urllib.error.URLError) as problem:
            reason = getattr(problem, "reason", problem)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                gave_up_waiting(WAIT_SECONDS)
                raise self.hang(f"GET {path} got no answer within {WAIT_SECONDS:g} s.")
            raise AssertionError(f"GET {path} failed: {reason}") from None

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
            self.url.replace("http", "ws", 1) + path, headers, self, source=source
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
        try:
            return Path(self._log.name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def output_tail(self, lines: int = 15) -> str:
        # Cello's banner is coloured for a terminal; a traceback reads as one line.
        plain = diagnoses.without_tracebacks(ANSI_ESCAPE.sub("", self.output()))
        return "\n".join("    " + line for line in plain.splitlines()[-lines:])

    # --- what went wrong -------------------------------------------------------------------------------------
    def problems(self, since: int = 0) -> list[str]:
        """The errors the server logged after character `since` of its output, one line each."""
        return diagnoses.problem_lines(ANSI_ESCAPE.sub("", self.output()[since:]))

    def new_problems(self) -> list[str]:
        """Errors logged during the current check and not yet quoted in a failure."""
        fresh = self.problems(max(self.check_start, self.reported))
        self.reported = len(self.output())
        return fresh

    def stacks(self) -> str:
        """Where each of the server's Python threads is now ("" where that cannot be seen)."""
        if not hasattr(signal, "SIGUSR1") or self.process.poll() is not None:
            return ""
        before = self._stacks.stat().st_size if self._stacks.exists() else 0
        try:
            os.kill(self.process.pid, signal.SIGUSR1)
        except OSError:
            return ""
        deadline, size = time.monotonic() + 1, before
        while time.monotonic() < deadline:  # faulthandler writes it at once, in pieces
            time.sleep(0.05)
            grown = self._stacks.stat().st_size if self._stacks.exists() else 0
            if grown > before and grown == size:
                break
            size = grown
        with open(self._stacks, errors="replace") as dump:
            dump.seek(before)
            return dump.read()

    def threads(self) -> list[list[diagnoses.Frame]]:
        """The stack of each of the server's Python threads, innermost frame first."""
        return diagnoses.parse_faulthandler(self.stacks())

    def hang(self, what: str, threads=None) -> AssertionError:
        """A failure for a wait that ended in nothing, saying where the server's code waits
        when it is stuck on a lock."""
        why = diagnoses.explain_wait(
            self.threads() if threads is None else threads, self.app_dir
        )
        if why:
            return LockTakenTwice(f"{what}\nThe server is stuck: {why}")
        return AssertionError(what)

    def stop(self) -> None:
        self._release_port()
        self.close_clients()
        # Ctrl-C, as a learner would, then kill.
        processes.stop(self.process, grace=STOP_SECONDS)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self._final_output is None:
            self._final_output = self.output()
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._stacks.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def server_command(
    app_dir: Path, direct: bool = False, host: str = "127.0.0.1"
) -> list[str]:
    """How a check starts app_dir's app: through `workshop.serve` (as `make step N` does), or
    with `direct=True` as `python app.py` (step 7's own entry point), on port {port}."""
    app_dir = Path(app_dir).resolve()
    if direct:
        return [sys.executable, str(app_dir / "app.py"), "--host", host] + [
            "--port",
            "{port}",
        ]
    return [sys.executable, "-m", "workshop.serve", str(app_dir)] + [
        "--host",
        host,
        "--port",
        "{port}",
    ]


def start_server(
    app_dir: Path,
    env: dict | None = None,
    direct: bool = False,
    port: int | None = None,
    extra: list[str] | None = None,
    host: str = "127.0.0.1",
) -> ChatServer:
    """Start app_dir's app on a free port: through `workshop.serve` (as `make step N` does), or
    with `direct=True` as `python app.py --port P` (step 7's own entry point). `port=` restarts a stopped
    server where its clients (a browser tab that reconnects) will look for it; `extra` adds
    command-line arguments; `host` another loopback address (scale.md#machines)."""
    return start_servers([(app_dir, env, direct, port, extra, host)])[0]


def stop_servers(servers: list[ChatServer]) -> None:
    """Stop several servers at once: Ctrl-C to all of them, STOP_SECONDS for them all
    (not each in turn), then a kill for those still running."""
    for server in servers:
        server.close_clients()
        if server.process.poll() is None:
            processes.interrupt(processes.with_descendants(server.process.pid))
    deadline = time.monotonic() + STOP_SECONDS
    for server in servers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for server in servers:
        if server.process.poll() is None:
            processes.stop(server.process, grace=0.1)  # it had its Ctrl-C already
        server.stop()


def start_servers(specs: list[tuple]) -> list[ChatServer]:
    """Several servers started at once, each (app_dir, env, direct, port, extra[, host]) as
    for start_server: they start side by side, which is quicker than one after the other."""
    servers: list[ChatServer] = []
    try:
        for app_dir, env, direct, port, extra, *rest in specs:
            host = rest[0] if rest else "127.0.0.1"
            command = server_command(app_dir, direct, host) + list(extra or [])
            servers.append(
                ChatServer(Path(app_dir).resolve(), command, env, port, host)
            )
        for server in servers:
            server.wait_until_accepting()
        return servers
    except BaseException:  # a Ctrl-C during the wait too: never leave a server behind
        for server in servers:
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
    """A chat participant: a real WebSocket connection plus the messages it has received so far.

    Its waits fail as soon as the outcome is known, not at their deadline: when the server logs an
    error, closes the connection, answers with an error nobody asked for, or sends something that
    is not a JSON object."""

    def __init__(
        self,
        url: str,
        headers: dict | None = None,
        server: "ChatServer | None" = None,
        source: str | None = None,
    ):
        self.server = server
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
    def _send(self, data, what: str) -> None:
        try:
            self.connection.send(data)
        except ConnectionClosed as closed:
            self.closed_reason = _close_code(closed)
            raise AssertionError(
                f"The server closed this client's connection ({self.closed_reason}) before "
                f"it could send {what}. It had received: {describe(self.received)}"
                + self._server_said()
            ) from None

    def send_json(self, payload) -> None:
        self._send(json.dumps(payload), json.dumps(payload)[:80])

    def send_text(self, text: str) -> None:
        self._send(text, repr(text[:80]))

    def send_bytes(self, data: bytes) -> None:
        self._send(data, "a binary frame")

    def say(self, message: str) -> None:
        self.send_json({"type": "chat", "message": message})

    def rename(self, name: str) -> None:
        self.send_json({"type": "set_name", "name": name})

    # --- receiving ---------------------------------------------------------------------------------------------
    def _server_said(self, settle: float = 0.3) -> str:
        """The errors the server logged during this check, as a paragraph (or ""). A server
        that just closed a connection may log why a moment later: up to `settle` seconds
        (each failing check waits it; the failure report quotes what comes later)."""
        if self.server is None:
            return ""
        deadline = time.monotonic() + settle
        while not (said := self.server.new_problems()) and time.monotonic() < deadline:
            time.sleep(LOG_POLL_SECONDS)
        return quote_problems(said)

    def _receive_one(self, deadline: float, on_silence=None):
        """The next message, or None at the deadline. Raises ConnectionClosed if the server
        closed the connection, and AssertionError as soon as the server logs an error;
        on_silence(seconds) is called while nothing arrives."""
        quiet_since = time.monotonic()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                raw = self.connection.recv(timeout=min(remaining, LOG_POLL_SECONDS))
                break
            except TimeoutError:
                if self.server is not None and (said := self.server.new_problems()):
                    raise AssertionError(
                        "The server logged an error meanwhile." + quote_problems(said)
                    ) from None
                if on_silence:
                    on_silence(time.monotonic() - quiet_since)
            except ConnectionClosed as closed:
                self.closed_reason = _close_code(closed)
                raise
        try:
            message = json.loads(raw)
        except (TypeError, json.JSONDecodeError):
            message = raw
        self.received.append(message)
        return message

    def wait_for(
        self, matches, what: str, timeout: float = WAIT_SECONDS, near_miss=None
    ):
        """The first unread message for which matches(message) is true; earlier unread ones are passed over.

        Fails at once on a message that rules it out: one that is not a JSON object, an error that
        `matches` does not ask for, or one for which near_miss(message) returns an explanation."""
        deadline = time.monotonic() + timeout
        looks = {"next": SILENCE_BEFORE_A_LOOK, "idle": 0}

        def on_silence(seconds: float) -> None:
            # A server stuck on a lock, or with nothing left to send, will never answer:
            # look at its threads now and then instead of waiting for the deadline.
            if self.server is None or seconds < looks["next"]:
                return
            looks["next"] = seconds + SILENCE_BEFORE_A_LOOK
            threads = self.server.threads()
            stuck = self.server.hang(f"This client waited for {what}.", threads)
            if isinstance(stuck, CheckFailure):
                gave_up_waiting(timeout)
                raise stuck
            waiting = diagnoses.waiting_for_input(threads, self.server.app_dir)
            looks["idle"] = looks["idle"] + 1 if waiting else 0
            if (
                waiting and looks["idle"] >= 2
            ):  # twice in a row, nothing received between
                gave_up_waiting(timeout)
                raise CheckFailure(
                    f"This client waited for {what}, but nothing more is coming: every "
                    "handler of the server waits for its participant's next message, at "
                    f"{diagnoses.where(waiting)}. It has received: "
                    f"{describe(self.received)}"
                )

        while True:
            while self._unread < len(self.received):
                message = self.received[self._unread]
                self._unread += 1
                if isinstance(message, dict) and matches(message):
                    return message
                self._rule_out(message, what, near_miss)
            try:
                message = self._receive_one(deadline, on_silence)
            except ConnectionClosed:
                said = self._server_said()
                raise AssertionError(
                    f"The server closed the connection ({self.closed_reason}) while this client waited for {what}. "
                    f"It had received: {describe(self.received)}"
                    + (
                        said
                        or "\nA handler that raises ends its participant's connection."
                    )
                ) from None
            except CheckFailure:
                raise  # it says what this client waited for
            except AssertionError as problem:
                raise AssertionError(
                    f"While this client waited for {what}: {problem}"
                ) from None
            if message is None:
                gave_up_waiting(timeout)
                failure = f"Waited {timeout:g} s for {what}, but received: {describe(self.received)}"
                raise (
                    self.server.hang(failure)
                    if self.server
                    else AssertionError(failure)
                )

    def never_hears(self, matches, what: str, seconds: float) -> dict | None:
        """The first message within `seconds` for which matches(message) is true; None when
        none comes, as it should not. Other messages are passed over; a server error still
        fails the check at once."""
        deadline = time.monotonic() + seconds
        while True:
            while self._unread < len(self.received):
                message = self.received[self._unread]
                self._unread += 1
                if isinstance(message, dict) and matches(message):
                    return message
            try:
                if self._receive_one(deadline) is None:
                    return None
            except ConnectionClosed:
                raise AssertionError(
                    f"The server closed the connection ({self.closed_reason}) while this "
                    f"client made sure it never hears {what}." + self._server_said()
                ) from None

    def _rule_out(self, message, what: str, near_miss) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise AssertionError(
                f"While this client waited for {what}, the server sent {describe([message])}: "
                'every message the chat sends is a JSON object with a "type", such as '
                '{"type": "error", "message": "..."}.'
            )
        if message["type"] == "error":
            raise AssertionError(
                f"While this client waited for {what}, the server answered with an error: "
                f"{json.dumps(message)}"
            )
        explanation = near_miss(message) if near_miss else None
        if explanation:
            raise AssertionError(
                f"While this client waited for {what}, {explanation}: {json.dumps(message)}"
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
        def signed_by_someone_else(m):
            if m.get("type") == "chat" and m.get("message") == message:
                return f"that message arrived signed {m.get('username')!r}"
            return None

        return self.wait_for(
            lambda m: (
                m.get("type") == "chat"
                and m.get("username") == username
                and m.get("message") == message
            ),
            f'the chat message {{"username": "{username}", "message": "{message[:40]}"}}',
            timeout,
            near_miss=signed_by_someone_else,
        )

    def expect_error(
        self, after: str, timeout: float = WAIT_SECONDS, accepted_if=None
    ) -> dict:
        """The next error message; `after` says what the client sent, for the failure message.
        accepted_if(message) tells a message that shows the server took the input instead."""

        def accepted(m):
            if accepted_if and accepted_if(m):
                return f"the server took {after} instead of refusing it"
            return None

        error = self.wait_for(
            lambda m: m.get("type") == "error",
            f'{{"type": "error", ...}} after {after}',
            timeout,
            near_miss=accepted,
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


def _close_code(closed: ConnectionClosed) -> str:
    return f"code {closed.rcvd.code if closed.rcvd else 'none (connection dropped)'}"


def quote_problems(problems: list[str], most: int = 4) -> str:
    """The server's error lines as a paragraph of a failure, with what they mean when known."""
    if not problems:
        return ""
    counted: dict[str, int] = {}
    for line in problems:
        counted[line] = counted.get(line, 0) + 1
    shown = [
        f"    {line}" + (f"   ({times} times)" if times > 1 else "")
        for line, times in list(counted.items())[:most]
    ]
    meanings = {
        meaning
        for line in counted
        if (meaning := diagnoses.explain_error(line)) is not None
    }
    return (
        "\nThe server logged:\n"
        + "\n".join(shown)
        + "".join(f"\n{meaning}" for meaning in sorted(meanings))
    )


def eventually(check, what: str, timeout: float = WAIT_SECONDS):
    """Poll check() until it returns something truthy; for state only visible by asking (GET /users)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            gave_up_waiting(timeout)
            raise AssertionError(f"Waited {timeout:g} s for {what}.")
        time.sleep(0.02)


def call(function, *args, what: str, timeout: float = WAIT_SECONDS):
    """function(*args) on a thread of its own, with a deadline: a call that never returns fails
    the check, saying where it waits (a lock its own thread already holds, say) instead of
    hanging pytest. Its exception, if it raises one, is raised here."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # handed to the check's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name=f"check: {what}", daemon=True)
    started = time.monotonic()
    thread.start()
    while thread.is_alive():
        thread.join(0.05)
        waited = time.monotonic() - started
        if thread.is_alive() and waited > 0.2:
            frames = diagnoses.frames_of_thread(thread.ident or 0)
            why = diagnoses.explain_wait(
                [frames], Path(function.__code__.co_filename).parent
            )
            if why or waited > timeout:
                gave_up_waiting(waited)
                message = (
                    f"{what} never returned"
                    + (f": {why}" if why else f" within {timeout:g} s.")
                    + _where_it_waits(frames, function)
                )
                raise LockTakenTwice(message) if why else CheckFailure(message)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def together(
    count: int, target, what: str, app_dir: Path, timeout: float = WAIT_SECONDS
) -> list:
    """target(0), ..., target(count - 1) on `count` threads released at the same instant by a
    barrier, as a room of people who click "join" together: the way to make a race happen on
    purpose. Returns the exceptions the threads raised. Never hangs: threads still running at
    the deadline (or stuck on a lock they hold) fail the check, saying where they wait."""
    barrier, raised = threading.Barrier(count), []

    def run(number):
        barrier.wait()
        try:
            target(number)
        except Exception as error:
            raised.append(error)

    threads = [
        threading.Thread(target=run, args=(n,), name=f"check: {what} {n}", daemon=True)
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.02)
        waited = time.monotonic() - started
        if waited < 0.3:
            continue
        stuck = [
            diagnoses.frames_of_thread(t.ident or 0) for t in threads if t.is_alive()
        ]
        why = diagnoses.explain_wait(stuck, app_dir)
        if why or waited > timeout:
            gave_up_waiting(waited)
            if why:
                raise LockTakenTwice(f"{what} never finished: {why}")
            raise CheckFailure(f"{what} never finished within {timeout:g} s.")
    return raised


def goes_ahead_while_held(
    lock, action, what: str, effect=None, finishing_counts: bool = True
) -> bool:
    """Whether action() gets past `lock` while another thread holds it, as it should not.

    The race made certain instead of hoped for: this thread holds the lock, as a handler in
    the middle of a change would, while action() runs on a thread of its own. It went ahead
    if it finished (unless finishing_counts is False: an action that need not wait, such
    as one that does not read what the lock guards), or if effect() turned true, within
    0.2 s. Then the lock is released, and action() must finish within WAIT_SECONDS."""
    done = threading.Event()
    failed: list = []

    def run():
        try:
            action()
        except Exception as error:
            failed.append(error)
        done.set()

    with lock:
        threading.Thread(target=run, name=f"check: {what}", daemon=True).start()
        deadline = time.monotonic() + 0.2
        went_ahead = False
        while time.monotonic() < deadline and not went_ahead:
            finished = done.wait(0.01)
            went_ahead = (finished and finishing_counts) or bool(effect and effect())
            if finished:
                break
    if not done.wait(WAIT_SECONDS):
        gave_up_waiting(WAIT_SECONDS)
        raise AssertionError(f"{what} never finished once the lock was free.")
    if failed:
        raise AssertionError(
            f"{what} raised {type(failed[0]).__name__}: {failed[0]}"
        ) from None
    return went_ahead


class ReadsWatched(dict):
    """A dict that notes when it is read (iterated, looked up, counted) while `armed`:
    put in place of an app's `clients` by reads_of(), it tells a check whether a
    function read the room, not only whether it finished."""

    armed = False
    read = False

    def _note(self) -> None:
        if self.armed:
            self.read = True

    def __iter__(self):
        self._note()
        return super().__iter__()

    def __len__(self):
        self._note()
        return super().__len__()

    def __getitem__(self, key):
        self._note()
        return super().__getitem__(key)

    def __contains__(self, key):
        self._note()
        return super().__contains__(key)

    def get(self, key, default=None):
        self._note()
        return super().get(key, default)

    def keys(self):
        self._note()
        return super().keys()

    def values(self):
        self._note()
        return super().values()

    def items(self):
        self._note()
        return super().items()

    def copy(self):
        self._note()
        return dict(super().items())


@contextlib.contextmanager
def reads_of(module, name: str = "clients"):
    """module.<name> (a dict) replaced, for the block, by a ReadsWatched copy that the
    app's functions use as they would the original; the original comes back after,
    with what the block changed in it."""
    original = getattr(module, name)
    watched = ReadsWatched(original)
    setattr(module, name, watched)
    try:
        yield watched
    finally:
        original.clear()
        original.update(dict.items(watched))
        setattr(module, name, original)


def _where_it_waits(frames, function) -> str:
    mine = diagnoses.learner_frames(frames, Path(function.__code__.co_filename).parent)
    if not mine:
        return ""
    return "\nIt waits at: " + " <- ".join(diagnoses.where(f) for f in mine)


def join(connect) -> tuple[ChatClient, str]:
    """A new participant, and the default name its own "<name> joined the chat" announcement gave it."""
    client = connect()
    joined = client.wait_for_system("joined the chat")
    return client, joined["message"].removesuffix(" joined the chat")


def need(module, name: str, hint: str):
    """module.name, or a check failure that says what to write."""
    assert hasattr(module, name), f"app.py has no `{name}` yet. {hint}"
    return getattr(module, name)


class StandInSocket:
    """A participant's socket for a direct call (add_client(ws_id, ws)): it keeps what is
    sent to it, and calls on_send() as each send begins."""

    def __init__(self, on_send=None):
        self.sent: list[str] = []
        self.on_send = on_send

    def send_text(self, text: str) -> None:
        if self.on_send is not None:
            self.on_send()
        self.sent.append(text)

    def close(self) -> None:
        pass


class RawParticipant:
    """A bare WebSocket connection that reads only when told to: a participant who stopped
    reading, or whose laptop vanished, or just a cheap member of a big audience."""

    def __init__(
        self,
        server: ChatServer,
        receive_buffer: int | None = None,
        joined: bool = True,
    ):
        """Connects and asks to join; `joined=False` returns without waiting for the
        answer (a crowd asks all at once), and finish_joining() waits for it."""
        self.sock = socket.socket()
        if receive_buffer:
            # Before connect(): the buffer also decides the TCP window the server may fill.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(WAIT_SECONDS)
        key = base64.b64encode(os.urandom(16)).decode()
        self.data = b""
        try:
            self.sock.connect(("127.0.0.1", server.port))
            self.sock.sendall(
                f"GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
        except OSError as problem:
            self.sock.close()
            raise AssertionError(
                f"A new participant could not connect: {problem}."
            ) from None
        if joined:
            self.finish_joining()

    def finish_joining(self) -> None:
        """Wait for the server's answer to the handshake: 101, the WebSocket is open."""
        try:
            while b"\r\n\r\n" not in self.data:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise AssertionError(
                        "The server closed a new connection during its handshake."
                    )
                self.data += chunk
        except OSError as problem:
            self.sock.close()
            raise AssertionError(
                f"A new participant could not connect: {problem}."
            ) from None
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0]
        assert b" 101 " in status, f"The WebSocket handshake failed: {status[:200]!r}"

    def say(self, text: str) -> None:
        """A masked text frame (clients must mask; an all-zero mask leaves it as it is)."""
        payload = json.dumps({"type": "chat", "message": text}).encode()
        assert len(payload) < 126
        try:
            self.sock.sendall(
                bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload
            )
        except OSError as problem:
            raise AssertionError(
                f"The server closed a participant's connection before it could say "
                f"{text!r}: {problem}."
            ) from None

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
    # A rename that lands meanwhile is new too: the check must let names settle first.
    assert len(joined) == 1, (
        f"GET /users shows new names {sorted(joined)}, expected one"
    )
    return participant, joined.pop()


def _count_while_it_grows(server: ChatServer, size: int) -> int:
    """GET /users's count once it reaches `size`, or stops growing for WAIT_SECONDS: a
    busy machine may take longer to count a crowd, a pool that is full never will."""
    limit = time.monotonic() + 4 * WAIT_SECONDS
    counted, since = -1, time.monotonic()
    while True:
        now_counted = server.get_json("/users")["count"]
        now = time.monotonic()
        if now_counted == size:
            return size
        if now_counted != counted:
            counted, since = now_counted, now
        if now - since > WAIT_SECONDS or now > limit:
            gave_up_waiting(WAIT_SECONDS)
            return counted
        time.sleep(0.02)


def a_room_hears(
    server: ChatServer,
    size: int,
    why: str,
    nobody: CheckFailure | None = None,
    together: int = 1,
) -> None:
    """`size` participants join, `together` at a time; the last one speaks, and every
    one of them must hear it. `nobody`: the failure when all joined and not one heard
    it (delivery, not threads)."""
    allow_open_sockets(size)
    before = server.get_json("/users")["count"]
    room: list[RawParticipant] = []
    try:
        # `together` knock at once, then each waits to be let in: for coroutines, far
        # quicker than one after the other; `def` handlers' threads, all started at
        # once, wait on each other instead (docs/performance.md#crowds).
        while len(room) < size:
            wave = [
                RawParticipant(server, joined=False)
                for _ in range(min(together, size - len(room)))
            ]
            room += wave
            for member in wave:
                member.finish_joining()
        counted = _count_while_it_grows(server, size)
        if counted != size:
            raise AssertionError(
                f"{size} participants connected, but GET /users counts {counted}. {why}"
            )
        room[-1].say("can the back row hear me?")
        deadline = time.monotonic() + WAIT_SECONDS
        deaf = [
            number
            for number, member in enumerate(room, 1)
            if not member.heard("can the back row hear me?", deadline)
        ]
        if nobody is not None and len(deaf) == size:
            raise nobody
        assert not deaf, (
            f"{len(deaf)} of {size} participants never heard the message "
            f"(the first: number {deaf[0]}). {why}"
        )
    finally:
        for member in room:
            member.close()
    # The next check starts in a settled room: on a busy machine, hundreds of departures
    # still being announced can keep a newcomer's handler from starting for seconds.
    deadline = time.monotonic() + 2 * WAIT_SECONDS
    while server.get_json("/users")["count"] > before:
        if time.monotonic() > deadline:
            break  # the checks of departures say what is wrong, not this one
        time.sleep(0.05)
