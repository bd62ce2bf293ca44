"""What a whole classroom needs from the chat, ready-made. app.py uses three things from here:

    outbox = Outbox(ws, on_dropped=...)   # one per participant: their messages on the way out
    outbox.put(text)                      # queue a message for them; never blocks, never raises
    outbox.close()                        # they left: stop sending, close the connection

    limit = RateLimit(per_second=5, burst=10)
    if not limit.allow(): ...             # this participant is sending too fast

    allow_many_connections()              # before app.run: a big room needs many open connections

Why outboxes. Step 6's broadcast() sends to each client in turn, on the sender's own thread. On Cello
1.4.1 `ws.send_text` *blocks* once a few megabytes wait for a client that stopped reading (a laptop lid
closed mid-session, a hostile script), and the whole broadcast waits behind that one client: the room
freezes. Here broadcast() only appends to each participant's outbox, and a few delivery threads do the
sending. A participant whose send stays blocked for SEND_TIMEOUT_SECONDS, or whose outbox holds
MAX_BACKLOG messages, has fallen too far behind: their connection is closed and `on_dropped` is called
(app.py announces them as left). Everybody else keeps chatting meanwhile, served by the other threads.

Why threads, when step 7's handler is `async def`? A coroutine may not call the blocking `ws.send_text`
(Cello raises RuntimeError), and awaiting `ws.asend_text` for each participant measured three times slower
than the blocking call made from a few threads: slower than the reference server (docs/performance.md).
"""

import collections
import os
import queue
import threading
import time

# Cello's send_text blocks only once megabytes are waiting for a participant, so a send blocked this long
# means they stopped reading. The environment variable lets the checks use a shorter one.
SEND_TIMEOUT_SECONDS = float(os.environ.get("CHAT_SEND_TIMEOUT_SECONDS", "5"))
# Messages queued for one participant before they count as too far behind, whatever the reason. A room that
# is merely busy stays far below it: 2,000 people joining at once queue 2,000 "joined" messages each.
MAX_BACKLOG = 5000
# Sending is quick (microseconds) unless a participant stalls. Several threads let the room carry on while
# one is stuck on a stalled participant, until the watchdog gives up on that participant.
DELIVERY_THREADS = 4

_ready = queue.SimpleQueue()  # outboxes with messages to send; each appears at most once
_dropped = queue.SimpleQueue()  # outboxes that fell too far behind, for the watchdog to close
_couriers = []  # the delivery threads currently on duty
_started = threading.Lock()


class Outbox:
    """One participant's messages on their way out, in order."""

    def __init__(self, ws, on_dropped):
        self.ws = ws
        self.on_dropped = on_dropped  # called once, on the watchdog's thread, if this participant falls behind
        self._lock = threading.Lock()
        self._waiting = collections.deque()
        self._scheduled = False  # in _ready, or being emptied by a courier: never by two at once (order)
        self._closed = False
        _start_delivery()

    def put(self, text: str) -> None:
        """Queue one message; a courier sends it soon. Never blocks, so it is safe under any lock."""
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
        """Stop sending (what is still queued is dropped) and close the connection. Safe to call twice."""
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
                    self.close()  # the participant left: their handler announces it
                    break
                finally:
                    courier.sending = None
                if courier.replaced:
                    return  # the watchdog gave up on this participant while we were stuck on them


class _Courier(threading.Thread):
    """A delivery thread: takes outboxes from _ready and empties them."""

    def __init__(self):
        super().__init__(name="chat-delivery", daemon=True)
        self.sending = None  # (outbox, when the current send started) while a send is under way
        self.replaced = False

    def run(self):
        while not self.replaced:
            _ready.get()._deliver(self)


def _watchdog() -> None:
    """Closes participants who fell too far behind, and replaces a courier stuck on one of them.

    A blocked send_text cannot be interrupted (closing the connection does not wake it up on Cello 1.4.1),
    so the stuck thread is left to finish whenever that connection dies, and a fresh one takes its place.
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
    """Start the couriers and the watchdog with the first outbox: importing this module starts nothing."""
    with _started:
        if not _couriers:
            for _ in range(DELIVERY_THREADS):
                _hire_courier()
            threading.Thread(target=_watchdog, name="chat-watchdog", daemon=True).start()


class RateLimit:
    """A token bucket: up to `burst` messages at once, then `per_second` on average."""

    def __init__(self, per_second: float, burst: int):
        self.per_second = per_second
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def allow(self) -> bool:
        """Whether one more message may go now (and count it if so)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def allow_many_connections(wanted: int = 65536) -> None:
    """Let this process hold a big room. Every connection is an open file to the operating system, and a process
    may open only 256 by default on macOS, often 1,024 on Linux: a room of 300 would fail there. The hard limit
    is usually far higher, and a process may raise its own soft limit up to it."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        for limit in (target, 10240):  # macOS refuses more than kern.maxfilesperproc (10,240 unless raised)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
                return
            except (ValueError, OSError):
                continue
