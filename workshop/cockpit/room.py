"""The chat as the projector shows it: the cockpit joins the served checkpoint as one more
participant, folds the system noise, and keeps count of who is online.

    FoldedChat   what the room said, with "User-18 joined the chat" + "User-18 is now known as
                 Ada" folded into one line, "Ada joined" (and a burst of arrivals into one line)
    RoomWatcher  a thread that follows whatever chat runs on a port: it joins it as "Projector",
                 finds out what that checkpoint can do (a page? a broadcast? GET /users?), answers
                 the heartbeat's pings, and reconnects when the instructor serves another one

The projector never talks to the chat from the browser: the chat refuses WebSockets from another
origin (step7.md#run-it), and the instructor's views must not depend on the learner's chat code.
"""

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

# Arrivals this close together share one line; a rename this soon after joining (before a
# word was said) replaces the default name in that line.
GROUP_SECONDS = 30.0
RENAME_SECONDS = 120.0
KEPT_LINES = 60
OWN_NAME = "Projector"
JOINED = re.compile(r"(?P<name>.+) joined the chat")
RENAMED = re.compile(r"(?P<old>.+) is now known as (?P<new>.+)")
LEFT = re.compile(r"(?P<name>.+) left the chat")
# How long the watcher waits for its own join announcement, and for a probe's.
ANSWER_SECONDS = 3.0
RETRY_SECONDS = 1.0
USERS_POLL_SECONDS = 1.0


def names_text(names: list[str], shown: int = 4) -> str:
    """'Ada', 'Ada and Grace', 'Ada, Grace and Linus', 'Ada, Grace, Linus and 5 others'."""
    if len(names) == 1:
        return names[0]
    if len(names) <= shown:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    others = len(names) - (shown - 1)
    return f"{', '.join(names[: shown - 1])} and {others} others"


@dataclass
class Line:
    id: int
    kind: str  # "chat", "joined", "left", "renamed", "notice"
    at: float
    names: list[str] = field(default_factory=list)  # joined, left: who
    username: str = ""  # chat: who said it
    text: str = ""  # chat: what; renamed, notice: the whole line

    def shown(self) -> dict:
        if self.kind == "joined":
            text = f"{names_text(self.names)} joined"
        elif self.kind == "left":
            text = f"{names_text(self.names)} left"
        else:
            text = self.text
        return {
            "id": self.id,
            "kind": self.kind,
            "username": self.username,
            "text": text,
        }


class FoldedChat:
    """The room's lines, folded as they arrive. Not thread-safe: the watcher holds a lock."""

    def __init__(self, hidden: set[str] | None = None):
        self.lines: deque[Line] = deque(maxlen=KEPT_LINES)
        self._ids = 0
        # Names whose comings and goings are not shown (the projector itself, its probe).
        self.hidden = hidden if hidden is not None else set()
        # Who joined recently and has not spoken yet: name -> the line that shows them.
        self._fresh: dict[str, tuple[Line, float]] = {}

    def _new(self, kind: str, now: float, **fields) -> Line:
        self._ids += 1
        line = Line(self._ids, kind, now, **fields)
        self.lines.append(line)
        return line

    def _last(self, kind: str, now: float) -> Line | None:
        last = self.lines[-1] if self.lines else None
        if last and last.kind == kind and now - last.at < GROUP_SECONDS:
            return last
        return None

    def system(self, text: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if renamed := RENAMED.fullmatch(text):
            self.renamed(renamed["old"], renamed["new"], now)
        elif joined := JOINED.fullmatch(text):
            self.joined(joined["name"], now)
        elif left := LEFT.fullmatch(text):
            self.left(left["name"], now)
        else:
            self._new("notice", now, text=text)

    def joined(self, name: str, now: float) -> None:
        if name in self.hidden:
            return
        line = self._last("joined", now)
        if line is None:
            line = self._new("joined", now)
        line.names.append(name)
        line.at = now
        self._fresh[name] = (line, now)

    def renamed(self, old: str, new: str, now: float) -> None:
        if old in self.hidden or new in self.hidden:
            return
        fresh = self._fresh.pop(old, None)
        if fresh and now - fresh[1] < RENAME_SECONDS and old in fresh[0].names:
            line = fresh[0]
            line.names[line.names.index(old)] = new
            self._fresh[new] = (line, fresh[1])
            return
        self._new("renamed", now, text=f"{old} is now known as {new}")

    def left(self, name: str, now: float) -> None:
        if name in self.hidden:
            return
        self._fresh.pop(name, None)
        line = self._last("left", now)
        if line is None:
            line = self._new("left", now)
        line.names.append(name)
        line.at = now

    def chat(self, username: str, text: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._fresh.pop(username, None)
        self._new("chat", now, username=username, text=text)

    def notice(self, text: str, now: float | None = None) -> None:
        self._new("notice", time.time() if now is None else now, text=text)

    def forget_fresh(self) -> None:
        """A new chat started: its renames are of its own arrivals."""
        self._fresh.clear()

    def shown(self) -> list[dict]:
        return [line.shown() for line in self.lines]


@dataclass
class Abilities:
    """What the served checkpoint lets the room do, found by trying it."""

    answers: bool = False  # GET / answers at all
    page: bool = False  # GET / serves an HTML page with a script: the chat page
    websocket: bool = False  # /ws/chat accepts a participant
    broadcast: bool = False  # one participant hears another join
    users: bool = False  # GET /users answers {"users": [...], "count": n}
    first_line: str = ""  # what GET / says, when it is not a page

    def sentences(self) -> list[str]:
        """What the room can do, in the words the terminal and the projector use."""
        if not self.answers:
            return ["The chat does not answer yet."]
        said = []
        if self.page:
            said.append("Open the address in a browser: the chat page joins the room.")
        else:
            what = f' ("{self.first_line}")' if self.first_line else ""
            said.append(
                f"The address answers{what}, but there is no chat page to join "
                "before step 5."
            )
        if self.websocket and self.broadcast:
            said.append("Everyone hears everyone.")
        elif self.websocket:
            said.append(
                "A WebSocket client hears only its own messages: the broadcast is step 4."
            )
        else:
            said.append("Nothing to join yet: the WebSocket handler is step 3.")
        if self.users:
            said.append("Who is online: GET /users.")
        elif self.broadcast:
            said.append(
                "GET /users arrives in step 6: the projector counts the arrivals it hears."
            )
        return said

    def as_dict(self) -> dict:
        return {
            "page": self.page,
            "websocket": self.websocket,
            "broadcast": self.broadcast,
            "users": self.users,
            "sentences": self.sentences(),
        }


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str, str]:
    """(status, content type, body) of GET url; (0, "", "") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(200_000).decode(errors="replace")
            return response.status, response.headers.get("Content-Type", ""), body
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), ""
    except (OSError, ValueError):
        return 0, "", ""


def users_of(http_url: str) -> list[str] | None:
    """GET /users's names, or None where the checkpoint has no such route."""
    status, _, body = http_get(f"{http_url}/users")
    if status != 200:
        return None
    try:
        data = json.loads(body)
        users = data["users"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(users, list):
        return None
    return [str(name) for name in users]


class RoomWatcher:
    """Follows the chat at http_url from a thread of its own; snapshot() is what the views show.

    changed() is called (from the watcher's thread) whenever the snapshot changes."""

    def __init__(self, http_url: str, changed=lambda: None):
        self.http_url = http_url.rstrip("/")
        self._changed = changed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: ClientConnection | None = None
        self.chat = FoldedChat()
        self._reset()

    def _reset(self) -> None:
        """Forget the chat that was served (the lines stay: the room's history)."""
        self.connected = False
        self.abilities = Abilities()
        self.own_name: str | None = None
        self.heard: list[str] = []  # who is online, from what the watcher heard
        self.users: list[str] | None = None  # who is online, from GET /users
        self.complete_roster = True  # the watcher heard every arrival (it came first)
        self.chat.hidden.clear()
        self.chat.hidden.add(OWN_NAME)
        self.chat.forget_fresh()

    # --- life cycle -------------------------------------------------------------------
    def start(self) -> "RoomWatcher":
        self._thread = threading.Thread(
            target=self._run, name="room-watcher", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        sock = self._socket
        if sock is not None:
            try:
                sock.close()
            except Exception:  # noqa: BLE001 (closing what may already be closed)
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def follow(self, http_url: str) -> None:
        """Watch another chat (the instructor served another checkpoint on another port)."""
        if http_url.rstrip("/") == self.http_url:
            return
        self.http_url = http_url.rstrip("/")
        sock = self._socket
        if sock is not None:
            sock.close()  # the loop notices, and reconnects to the new address

    # --- what the views show ----------------------------------------------------------
    def snapshot(self) -> dict:
        with self._lock:
            online = self.users if self.users is not None else self.heard
            others = [name for name in online if name != self.own_name]
            return {
                "chat_url": self.http_url,
                "connected": self.connected,
                "abilities": self.abilities.as_dict(),
                "count": len(others)
                if self.abilities.broadcast or self.users
                else None,
                "online": sorted(others, key=str.casefold),
                "counted_from": "users"
                if self.users is not None
                else ("heard" if self.abilities.broadcast else None),
                "complete": self.users is not None or self.complete_roster,
                "lines": self.chat.shown(),
            }

    # --- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            target = self.http_url
            try:
                gone = self._watch(target)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                gone = True
            if self._stop.is_set():
                return
            if gone or target != self.http_url:
                with self._lock:
                    if self.connected:
                        self.chat.notice("The chat stopped.")
                    self._reset()
                self._changed()
            if target == self.http_url:
                self._stop.wait(RETRY_SECONDS)

    def _watch(self, target: str) -> bool:
        """Watch the chat at target until it stops (True) or should be tried again (False)."""
        status, kind, body = http_get(target + "/")
        if status == 0:
            return True
        abilities = Abilities(answers=True)
        abilities.page = "html" in kind and "<script" in body.lower()
        if not abilities.page and body.strip():
            abilities.first_line = body.strip().splitlines()[0][:80]
        ws_url = target.replace("http", "ws", 1) + "/ws/chat"
        try:
            sock = connect(
                ws_url, open_timeout=ANSWER_SECONDS, close_timeout=1, legacy=True
            )
        except (OSError, InvalidHandshake, TimeoutError):
            # Nothing to join (steps 1 and 2): show what the address answers, look again soon.
            with self._lock:
                changed = not self.connected or self.abilities != abilities
                self.abilities, self.connected = abilities, True
            if changed:
                self._changed()
            self._stop.wait(RETRY_SECONDS * 2)
            return False
        self._socket = sock
        try:
            abilities.websocket = True
            self._join(sock, abilities, target)
            self._listen(sock, target)
        finally:
            self._socket = None
            sock.close()
        return True

    def _join(self, sock, abilities: Abilities, target: str) -> None:
        """Learn our default name, try the broadcast with a probe, take the name Projector."""
        own = self._wait_for(sock, JOINED)
        default_name = own["name"] if own else None
        # A second participant: does the first one hear it arrive? (step 4's broadcast)
        probe_name = None
        try:
            with connect(
                target.replace("http", "ws", 1) + "/ws/chat",
                open_timeout=ANSWER_SECONDS,
                close_timeout=1,
            ):  # the probe: in the room while we listen
                heard = self._wait_for(sock, JOINED, exclude=default_name)
                abilities.broadcast = heard is not None
                probe_name = heard["name"] if heard else None
        except (OSError, InvalidHandshake, TimeoutError):
            pass
        users = users_of(target)
        abilities.users = users is not None
        with self._lock:
            self.abilities = abilities
            self.connected = True
            self.own_name = default_name
            self.chat.hidden.update(filter(None, {default_name, probe_name}))
            if default_name:
                self.heard = [default_name]
            self.users = users
            # Anyone online besides us and the probe arrived before we did: not heard.
            already = [n for n in users or [] if n not in (default_name, probe_name)]
            self.complete_roster = not already
        if default_name:
            sock.send(json.dumps({"type": "set_name", "name": OWN_NAME}))
        self._changed()

    def _wait_for(self, sock, pattern: re.Pattern, exclude: str | None = None):
        """The first system line matching pattern within ANSWER_SECONDS. Only the watcher is
        in the room this early (make demo starts it first): what else arrives is dropped."""
        deadline = time.monotonic() + ANSWER_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                text = sock.recv(timeout=left)
            except TimeoutError:
                return None
            message = self._decode(text)
            if message is None:
                continue
            if message.get("type") == "ping":
                sock.send(json.dumps({"type": "pong"}))
                continue
            if message.get("type") == "system":
                found = pattern.fullmatch(str(message.get("message", "")))
                if found and found.groupdict().get("name") != exclude:
                    return found
        return None

    @staticmethod
    def _decode(text) -> dict | None:
        try:
            message = json.loads(text)
        except (TypeError, ValueError):
            return None
        return message if isinstance(message, dict) else None

    def _listen(self, sock, target: str) -> None:
        next_poll = time.monotonic()
        while not self._stop.is_set() and target == self.http_url:
            try:
                text = sock.recv(timeout=max(next_poll - time.monotonic(), 0.05))
            except TimeoutError:
                text = None
            if text is not None:
                self._heard(sock, self._decode(text))
            if self.abilities.users and time.monotonic() >= next_poll:
                next_poll = time.monotonic() + USERS_POLL_SECONDS
                users = users_of(target)
                with self._lock:
                    changed = users is not None and users != self.users
                    if changed:
                        self.users = users
                if changed:
                    self._changed()

    def _heard(self, sock, message: dict | None) -> None:
        if message is None:
            return
        kind = message.get("type")
        if kind == "ping":
            sock.send(json.dumps({"type": "pong"}))
            return
        with self._lock:
            if kind == "chat":
                self.chat.chat(
                    str(message.get("username", "")), str(message.get("message", ""))
                )
            elif kind == "system":
                text = str(message.get("message", ""))
                self.chat.system(text)
                self._count(text)
            else:
                return  # errors are ours alone (a name taken); nothing for the room
        self._changed()

    def _count(self, text: str) -> None:
        """Keep who is online from the announcements (for checkpoints without /users)."""
        if renamed := RENAMED.fullmatch(text):
            old, new = renamed["old"], renamed["new"]
            if old == self.own_name:
                self.own_name = new
            self.heard = [new if name == old else name for name in self.heard]
        elif joined := JOINED.fullmatch(text):
            self.heard.append(joined["name"])
        elif left := LEFT.fullmatch(text):
            if left["name"] in self.heard:
                self.heard.remove(left["name"])
