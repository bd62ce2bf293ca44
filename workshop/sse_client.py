"""What a browser's EventSource does with a text/event-stream, in Python, for the checks.

    answer = ask(server, "/live/events", last_id)  # one request: status, events, ...
    page = EventSource(server, "/live/events")     # follows it on a thread, as a page
    page.wait_for(lambda events: ..., "what")      # an event, with a deadline
    page.close()

It follows the WHATWG rules that matter here: `id:`, `event:`, `data:` and `retry:`
lines, an event at each blank line, and when a response ends, a new request `retry`
ms later with the last id seen as Last-Event-ID. Like a browser, it gives up for good
on an answer that is not 200 text/event-stream.
"""

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from workshop.harness import WAIT_SECONDS, ChatServer, CheckFailure, gave_up_waiting


@dataclass
class Event:
    kind: str  # the `event:` field ("message" if none)
    data: Any  # the `data:` lines, joined and decoded as JSON (the text if not)
    id: str | None  # the last id seen when it was dispatched
    at: float = 0.0  # time.time() when its answer had arrived (EventSource only)


@dataclass
class Answer:
    """One response to a request for the stream."""

    status: int
    content_type: str
    headers: dict
    body: str
    seconds: float  # from sending the request to the end of the body
    events: list[Event] = field(default_factory=list)
    last_id: str | None = None  # the id a reconnection would send
    retry_ms: int | None = None  # what its `retry:` line asked for


def parse(
    text: str, last_id: str | None = None
) -> tuple[list[Event], str | None, int | None]:
    """(events, the last id, the retry in ms) of a stream's text."""
    events: list[Event] = []
    data: list[str] = []
    kind, retry = None, None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data:
                joined = "\n".join(data)
                try:
                    decoded = json.loads(joined)
                except json.JSONDecodeError:
                    decoded = joined
                events.append(Event(kind or "message", decoded, last_id))
            data, kind = [], None
            continue
        if line.startswith(":"):
            continue  # a comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id":
            last_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
    return events, last_id, retry


def ask(
    server: ChatServer, path: str, last_id: str | None = None, timeout: float = 60
) -> Answer:
    """One GET of the stream, with Last-Event-ID if given, read to its end."""
    headers = {"Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    finally:
        connection.close()
    answer = Answer(
        response.status,
        response.getheader("Content-Type", ""),
        {name.lower(): value for name, value in response.getheaders()},
        body,
        time.monotonic() - started,
    )
    if answer.status == 200 and answer.content_type.startswith("text/event-stream"):
        answer.events, answer.last_id, answer.retry_ms = parse(body, last_id)
    else:
        answer.last_id = last_id
    return answer


def no_retry(path: str) -> CheckFailure:
    """The failure for a stream whose answers say nothing of when to ask again."""
    return CheckFailure(
        f"The answers of {path} start with no `retry:` line, so a page waits a "
        "browser's default 3 s before it asks again, and hears the room that late. "
        "Start each answer with f'retry: {RETRY_MS}\\n\\n'.",
        read="live.md#sse",
    )


class EventSource:
    """A page following the stream: .events holds every event dispatched, in order."""

    def __init__(self, server: ChatServer, path: str):
        self.server, self.path = server, path
        self.events: list[Event] = []
        self.answers: list[Answer] = []
        self.sent_ids: list[str | None] = []  # the Last-Event-ID of each request
        self.gave_up: str | None = None  # why it stopped, as a browser would
        self._last_id: str | None = None
        self._retry_ms = 3000  # a browser's default until the server says otherwise
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set():
            self.sent_ids.append(self._last_id)
            try:
                answer = ask(self.server, self.path, self._last_id)
            except OSError:
                answer = None  # the server is away: try again later, as browsers do
            if answer is not None:
                if answer.status != 200 or not answer.content_type.startswith(
                    "text/event-stream"
                ):
                    self.gave_up = f"it answered {answer.status} {answer.content_type}"
                    return
                arrived = time.time()
                for event in answer.events:
                    event.at = arrived
                with self._lock:
                    self.answers.append(answer)
                    self.events.extend(answer.events)
                self._last_id = answer.last_id
                self._retry_ms = answer.retry_ms or self._retry_ms
            self._stop.wait(self._retry_ms / 1000)

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def wait_for(
        self, matches, what: str, timeout: float = WAIT_SECONDS
    ) -> list[Event]:
        """The events so far, once matches(events) is true; fails after the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.snapshot()
            if matches(events):
                return events
            with self._lock:
                answers = list(self.answers)
            if answers and all(answer.retry_ms is None for answer in answers):
                raise no_retry(self.path)
            if self.gave_up or time.monotonic() > deadline:
                gave_up_waiting(timeout)
                seen = ", ".join(f"{e.kind} {e.data}" for e in events[-6:]) or "none"
                why = f" It stopped asking: {self.gave_up}." if self.gave_up else ""
                raise AssertionError(
                    f"A page following {self.path} waited {timeout:g} s for {what}.{why} "
                    f"Its last events: {seen}"
                )
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
