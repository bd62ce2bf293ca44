"""What keeps a hostile participant from spoiling the room, handed out ready-made
(docs/guard.md). app.py uses six things from here:

    limit = RateLimit(per_second=5, burst=10)  # one per participant: limit.allow()

    @app.websocket("/ws/chat")
    @limit_per_address                # at most MAX_PER_ADDRESS open chats per address
    async def chat_handler(ws): ...

    name_problem(name)                # why a name would fool the room, or None
    look_alike(name, other)           # "Аlice" (Cyrillic А) looks like "Alice"
    page(html)                        # the page, with a Content-Security-Policy
    harden(app, pages={"/": index})   # before app.run: Cello's own limits and headers

Why each one, in short (the measurements are in the guide):

* A flood: one participant sending hundreds of messages a second costs a broadcast
  each. RateLimit lets a person's burst through and refuses a script's flood
  (guard.md#rate-limit).
* Cello 1.4.1 keeps up to 16 MiB of one unfinished WebSocket message in memory before
  the handler sees any of it, and has no limit per address: 100 connections from one
  script grew the server by 1.8 GB, and 5,000 idle ones made the room wait seconds for
  its own messages. A handler that closes the socket at once frees it, so
  limit_per_address counts the sender's address first and closes the surplus
  (guard.md#per-address).
* Names are compared by their Unicode TR39 "skeleton", what they look like, with the
  `disarm` package: Cyrillic "Аlice", fullwidth "Ａｌｉｃｅ" and "Alice" share one
  (guard.md#look-alike-names).
* Cello closes every connection past LimitsConfig.max_connections (10,000 by default),
  half-sent request heads included, and waits 30 s for a head: one address holding
  10,000 unfinished heads locked everybody out. harden() lets Cello hold as many
  connections as the process may open and gives a head 5 s (guard.md#half-sent-heads).

Settings (environment variables, read at start):
    CHAT_MAX_PER_ADDRESS  open chats from one address (default 8; 0: no limit). This
                          machine's own 127.0.0.1 and ::1 are never limited. A class
                          behind one shared address (a school's NAT, a proxy) needs the
                          class size plus spare tabs here (guard.md#shared-address).
    CHAT_HEADER_SECONDS   time a client gets to send a request head (default 5).
"""

import functools
import hashlib
import json
import os
import re
import threading
import time
import unicodedata
from base64 import b64encode
from collections import Counter

from cello import LimitsConfig, Response, TimeoutConfig
from disarm import skeleton_key

MAX_PER_ADDRESS = int(os.environ.get("CHAT_MAX_PER_ADDRESS", "8"))
# Your own browser tab, the workshop's checks and bots connect from this machine.
# (Behind a proxy on this machine everybody would: see guard.md#shared-address.)
UNLIMITED_ADDRESSES = {"127.0.0.1", "::1"}
HEADER_SECONDS = int(os.environ.get("CHAT_HEADER_SECONDS", "5"))  # whole seconds


# --- Messages per participant --------------------------------------------------------


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
        refill = (now - self.updated) * self.per_second
        self.tokens = min(self.burst, self.tokens + refill)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


# --- Connections per address ---------------------------------------------------------

_open_per_address: Counter = Counter()
_counter_lock = threading.Lock()


def client_address(ws) -> str:
    """The peer's IP address: the TCP peer, unless app.set_trusted_proxies() names a
    proxy in front of the chat."""
    return ws.request.client_ip() if ws.request is not None else "unknown"


def limit_per_address(handler):
    """Wrap an `async def` WebSocket handler: a connection whose address already has
    MAX_PER_ADDRESS open is told so and closed before the handler runs. Goes between
    @app.websocket(...) and the handler."""

    @functools.wraps(handler)
    async def guarded(ws):
        address = client_address(ws)
        with _counter_lock:
            admitted = (
                not MAX_PER_ADDRESS
                or address in UNLIMITED_ADDRESSES
                or _open_per_address[address] < MAX_PER_ADDRESS
            )
            if admitted:
                _open_per_address[address] += 1
        if not admitted:
            # Closed before anything else: Cello then stops buffering what they send.
            refusal = (
                f"Too many chats are open from your address ({MAX_PER_ADDRESS}): "
                "close a tab, or ask the instructor to raise CHAT_MAX_PER_ADDRESS."
            )
            await ws.asend_text(json.dumps({"type": "error", "message": refusal}))
            ws.close()
            return
        try:
            await handler(ws)
        finally:
            with _counter_lock:
                _open_per_address[address] -= 1
                if not _open_per_address[address]:
                    del _open_per_address[address]

    return guarded


# --- Names ---------------------------------------------------------------------------

# Characters that show nothing: Unicode's Default_Ignorable_Code_Point (zero-width
# spaces and joiners, bidi controls, variation selectors such as the U+FE0F after
# "Alice", tag characters, the Hangul fillers U+3164 and U+FFA0...) and U+2800 BRAILLE
# PATTERN BLANK. Spaces other than " " are refused too (no-break, ideographic...).
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
# Combining marks: "ë" has one, Vietnamese "ệ" two, a "Zalgo" tower dozens.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_MARK_TOWER = re.compile(f"[{_MARKS}]{{3,}}")
# Names that would pass for the chat itself, compared by look ("Ｓｙｓｔｅｍ" too).
RESERVED_NAMES = ("system", "server", "error", "admin", "moderator")
# The wording of app.py's system lines: a name containing one could fake such a line.
SYSTEM_PHRASES = ("joined the chat", "left the chat", "is now known as")


@functools.lru_cache(maxsize=8192)
def _looks(name: str) -> frozenset:
    """What a name looks like: its TR39 skeletons, confusable letters folded to one
    prototype ("Аlice", "Ａｌｉｃｅ" and "AIice" all give "alice"). Taken before and
    after case folding: the table folds a capital I to l, so "ALICE" alone would give
    "allce". digit_policy="tr39" also folds 0 to o and 1 to l."""
    return frozenset(
        skeleton_key(form, digit_policy="tr39") for form in (name, name.casefold())
    )


def look_alike(name: str, other: str) -> bool:
    """Whether two names look the same on screen, case aside."""
    return not _looks(name).isdisjoint(_looks(other))


def name_problem(name: str) -> str | None:
    """Why this name would fool the room, in words for whoever chose it; None if
    it is fine."""
    for char in name:
        blank = unicodedata.category(char) == "Zs" and char != " "
        if blank or _INVISIBLE.match(char):
            what = unicodedata.name(char, "an unnamed character")
            return (
                "A name cannot contain invisible characters or special spaces: this "
                f"one has U+{ord(char):04X} {what}."
            )
    if _MARK_TOWER.search(unicodedata.normalize("NFD", name)):
        return "A name cannot stack more than two accents on one letter."
    if ":" in name:
        return 'A name cannot contain ":": it would look like the start of a message.'
    looks = _looks(name)
    if not any(key.strip() for key in looks):
        return "A name needs at least one visible letter or digit."
    for reserved in RESERVED_NAMES:
        if looks & _looks(reserved):
            return f'"{name}" reads like the chat itself speaking: choose another name.'
    for phrase in SYSTEM_PHRASES:
        if any(shape in key for shape in _looks(phrase) for key in looks):
            return (
                f'A name cannot contain "{phrase}": it would read like a line from the '
                "chat itself."
            )
    return None


# --- The page, and Cello's own settings ----------------------------------------------

_INLINE = re.compile(r"<(script|style)(?:\s[^>]*)?>(.*?)</\1>", re.S | re.I)


def page(html: str) -> Response:
    """The page with a Content-Security-Policy: only its own inline <script> and
    <style> run (each allowed by its SHA-256, computed on every request, so an edited
    index.html still works), it connects only to this server, and no other site may
    frame it. Markup injected into the page could run nothing."""
    allowed = {"script": "", "style": ""}
    for kind, body in _INLINE.findall(html):
        digest = b64encode(hashlib.sha256(body.encode()).digest()).decode()
        allowed[kind.lower()] += f" 'sha256-{digest}'"
    policy = (
        f"default-src 'none'; script-src{allowed['script'] or " 'none'"}; "
        f"style-src{allowed['style'] or " 'none'"}; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    response = Response.html(html)
    response.set_header("Content-Security-Policy", policy)
    return response


def _method_not_allowed(request):
    problem = f"{request.method} is not allowed here: use GET."
    response = Response.json({"error": problem, "status": 405}, status=405)
    response.set_header("Allow", "GET, HEAD")
    return response


def file_limit() -> int:
    """How many files (connections) this process may open."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to read; Cello's default then
        return 10_000 + 64
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 65536 if soft == resource.RLIM_INFINITY else soft


def harden(app, pages: dict) -> None:
    """Cello's settings for a room with hostile participants. Call it before app.run,
    after allow_many_connections(). pages: {path: its GET handler}; HEAD answers as GET
    does (without the body), POST, PUT, DELETE, PATCH and OPTIONS answer 405."""
    # Every connection counts, half-sent heads too; past the file limit Cello's accept
    # loop spins at 100% CPU and nobody gets in, so stay just under it.
    connections = max(file_limit() - 64, 64)
    app.set_limits(
        LimitsConfig(
            max_connections=connections,
            max_header_size=16 * 1024,
            max_body_size=64 * 1024,
        )
    )
    # A request head gets HEADER_SECONDS in all, however slowly it trickles in. No
    # timeout here ever closes an open WebSocket.
    app.set_timeouts(
        TimeoutConfig(
            read_header=HEADER_SECONDS, read_body=10, write=30, idle=60, handler=30
        )
    )
    # nosniff, X-Frame-Options, Referrer-Policy on every answer. Not strict=True: its
    # CSP blocks the page's inline script and replaces page()'s own policy.
    app.enable_security_headers()
    for path, handler in pages.items():
        app.head(path)(handler)
        others = ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
        app.route(path, methods=others)(_method_not_allowed)
