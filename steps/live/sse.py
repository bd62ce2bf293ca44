"""The room's news for server-sent events, handed out ready-made (docs/live.md#sse).

app.py uses three things from here:

    room_events = EventLog()
    room_events.publish("joined", {"name": "Ada", "count": 3})  # never blocks
    news = await room_events.wait_after(last_id, WAIT_SECONDS)  # what a page lacks
    room_events.last_id  # the newest event's id

Why every answer ends: Cello 1.4.1 sends a response whole, once its handler has returned
it, so one endless text/event-stream response cannot be written (a generator, an async
generator or an SseStream returned by a handler is a 500). So GET /live/events answers
as soon as there is news for that page, or after WAIT_SECONDS with none, and the
browser's EventSource asks again RETRY_MS later by itself, sending the id of the last
event it saw as Last-Event-ID: wait_after() gives it exactly the events after that id,
nothing twice. A request that awaits holds no thread, so a room of open pages costs
none of the pool's.

Ids read "<boot>.<n>": an id from before a restart, or one too old for the last
MAX_EVENTS, gets None from wait_after(), and the page starts over from the room as it
is now.
"""

import asyncio
import collections
import json
import os
import secrets
import threading

from cello import SseEvent

MAX_EVENTS = 1000
# How long a request waits for news before it answers with none. Under 30 s: Cello
# answers a handler that runs longer with 504, and EventSource gives up on a 504.
WAIT_SECONDS = float(os.environ.get("CHAT_EVENTS_WAIT_SECONDS", "25"))
# How long EventSource waits before it asks again: the longest an event can wait.
RETRY_MS = 250


class EventLog:
    """The room's last MAX_EVENTS events, and the pages waiting for the next."""

    def __init__(self):
        self.boot = secrets.token_hex(4)  # new at each start: old ids are recognised
        self._events = collections.deque(maxlen=MAX_EVENTS)  # (n, SseEvent), in order
        self._count = 0  # events published so far: the newest one's n
        self._lock = threading.Lock()
        self._loop = None  # Cello's event loop, learnt at the first wait
        self._news = None  # an asyncio.Event on that loop, set at the next publish

    @property
    def last_id(self) -> str:
        """The newest event's id: a picture of the room taken now carries it."""
        with self._lock:
            return f"{self.boot}.{self._count}"

    def publish(self, kind: str, data: dict) -> None:
        """Add an event for every page, and wake the requests waiting for one."""
        with self._lock:
            self._count += 1
            event_id = f"{self.boot}.{self._count}"
            event = SseEvent(json.dumps(data), event=kind, id=event_id)
            self._events.append((self._count, event))
            loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake)  # never blocks

    def _wake(self) -> None:
        """On the event loop: every request waiting now has news."""
        if self._news is not None:
            self._news.set()
            self._news = None

    def _after(self, last_id: str | None) -> list | None:
        """The events after last_id; None for an id this run cannot continue from."""
        boot, _, number = (last_id or "").partition(".")
        if boot != self.boot or not number.isdigit():
            return None  # a new page, an id from before a restart, or garbage
        seen = int(number)
        with self._lock:
            oldest = self._events[0][0] if self._events else self._count + 1
            if seen > self._count or seen < oldest - 1:
                return None  # from the future, or older than what is kept
            return [event for n, event in self._events if n > seen]

    async def wait_after(self, last_id: str | None, timeout: float) -> list | None:
        """The events after last_id, waiting up to `timeout` s for one: [] if none came,
        None if the page must start over."""
        self._loop = asyncio.get_running_loop()
        events = self._after(last_id)
        if events != []:
            return events
        # No await since _after(): a publish from now on sets this very Event.
        if self._news is None:
            self._news = asyncio.Event()
        news = self._news
        try:
            await asyncio.wait_for(news.wait(), timeout)
        except TimeoutError:
            return []
        return self._after(last_id)
