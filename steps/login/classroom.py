"""What a whole room needs from the chat, handed out ready-made (docs/room.md#outboxes).

app.py uses two things from here:

    outbox = Outbox(ws, on_dropped=...)  # one per participant: their messages out
    outbox.put(text)                     # queue a message: never blocks, never raises
    outbox.close()                       # they left: stop sending, close the socket

    allow_many_connections()             # before app.run: an open file per participant

Why outboxes: Cello's `ws.send_text` blocks once a few megabytes wait for a participant
who stopped reading, and a broadcast that sends to each in turn waits there with the
whole room. Here broadcast() only appends to each participant's outbox, and a few
delivery threads (couriers) do the sending. A participant whose send stays blocked for
SEND_TIMEOUT_SECONDS, or whose outbox holds MAX_BACKLOG messages, is closed and
`on_dropped` is called; everybody else keeps chatting meanwhile.

Why threads beside an `async def` handler: a coroutine may not call the blocking
`ws.send_text`, and awaiting `ws.asend_text` per participant measured three times slower
than a few threads calling the blocking one (docs/performance.md).
"""

import collections
import os
import queue
import threading
import time

# A send blocked this long means they stopped reading; the checks set less.
SEND_TIMEOUT_SECONDS = float(os.environ.get("CHAT_SEND_TIMEOUT_SECONDS", "5"))
# Queued for one participant before they count as too far behind. A busy room stays far
# below it: 2,000 people joining at once queue 2,000 "joined" messages each.
MAX_BACKLOG = 5000
# Sending takes microseconds unless a participant stalls: a few threads keep the room
# going while one is stuck, until the watchdog gives up on that participant.
DELIVERY_THREADS = 4

_ready: queue.SimpleQueue = queue.SimpleQueue()  # outboxes with messages to send
_dropped: queue.SimpleQueue = queue.SimpleQueue()  # outboxes too far behind, to close
_couriers: list["_Courier"] = []  # the delivery threads on duty
_started = threading.Lock()


class Outbox:
    """One participant's messages on their way out, in order."""

    def __init__(self, ws, on_dropped):
        self.ws = ws
        self.on_dropped = on_dropped  # called once, if this participant falls behind
        self._lock = threading.Lock()
        self._waiting: collections.deque[str] = collections.deque()
        self._scheduled = False  # queued in _ready or being sent: by one courier only
        self._closed = False
        _start_delivery()

    def put(self, text: str) -> None:
        """Queue one message for a courier to send. Never blocks: safe under a lock."""
        with self._lock:
            if self._closed:
                return
            if len(self._waiting) >= MAX_BACKLOG:
                self._closed = True
                self._waiting.clear()
                _dropped.put(self)
                return
            self._waiting.append(text)
            if not self._scheduled:
                self._scheduled = True
                _ready.put(self)

    def close(self) -> None:
        """Stop sending (dropping what is queued), close the connection. Idempotent."""
        with self._lock:
            self._closed = True
            self._waiting.clear()
        self.ws.close()  # never blocks

    def _deliver(self, courier: "_Courier") -> None:
        """Send everything queued, in order. Called by one courier at a time."""
        while True:
            with self._lock:
                if self._closed or not self._waiting:
                    self._scheduled = False
                    return
                batch = list(self._waiting)
                self._waiting.clear()
            for text in batch:
                courier.sending = (self, time.monotonic())
                try:
                    self.ws.send_text(text)
                except ConnectionError:
                    self.close()  # they left: their handler announces it
                    break
                finally:
                    courier.sending = None
                if courier.replaced:
                    return  # the watchdog gave up on this participant meanwhile


class _Courier(threading.Thread):
    """A delivery thread: takes outboxes from _ready and empties them."""

    def __init__(self):
        super().__init__(name="chat-delivery", daemon=True)
        self.sending: tuple[Outbox, float] | None = None  # (outbox, since) in a send
        self.replaced = False

    def run(self):
        while not self.replaced:
            _ready.get()._deliver(self)


def _watchdog() -> None:
    """Closes participants who fell too far behind; replaces a courier stuck on one.

    A blocked send_text cannot be interrupted (closing the connection does not wake it
    on Cello 1.4.1): the stuck thread finishes whenever that connection dies, and a
    fresh one takes its place meanwhile.
    """
    while True:
        try:
            _drop(_dropped.get(timeout=SEND_TIMEOUT_SECONDS / 4))
        except queue.Empty:
            pass
        now = time.monotonic()
        for courier in list(_couriers):
            sending = courier.sending
            if sending is not None and now - sending[1] > SEND_TIMEOUT_SECONDS:
                courier.replaced = True
                _couriers.remove(courier)
                _hire_courier()
                _drop(sending[0])


def _drop(outbox: Outbox) -> None:
    outbox.close()
    outbox.on_dropped()


def _hire_courier() -> None:
    courier = _Courier()
    _couriers.append(courier)
    courier.start()


def _start_delivery() -> None:
    """Start the couriers and the watchdog with the first outbox, not at import."""
    with _started:
        if not _couriers:
            for _ in range(DELIVERY_THREADS):
                _hire_courier()
            watchdog = threading.Thread(target=_watchdog, name="watchdog", daemon=True)
            watchdog.start()


def allow_many_connections(wanted: int = 65536) -> None:
    """Let this process hold a big room: each connection is an open file, and a process
    may open 256 by default on macOS (often 1,024 on Linux). The hard limit is usually
    far higher, and a process may raise its own soft limit up to it."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        for limit in (target, 10240):  # macOS refuses more than kern.maxfilesperproc
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
                return
            except (ValueError, OSError):
                continue
