"""The instructor's cockpit: a small web server of the instructor tools, never of the chat.

    python -m workshop dashboard            (make dashboard)   the whole session, in a terminal
    python -m workshop demo 5               (make demo 5)      starts one too, if none runs yet

    http://127.0.0.1:8002/projector   large type for the projector: how to join (address and QR
                                      code), who is online, the chat with the noise folded
    http://127.0.0.1:8002/dashboard   the class's progress: learners x steps, who is stuck
                                      longest, the check failing for most of the room

Only this machine sees the views. The room's machines may only report their check results
(POST /api/report, from a private network: LAN only) and ask whether a cockpit is here.

It is built on the standard library's ThreadingHTTPServer, not on Cello: it runs beside the
checkpoint being taught in the same process as make demo (a Cello app takes over its process's
main thread and signals), it has a handful of viewers and a few report requests a second, and it
must keep working whatever state the chat being taught is in.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from workshop.cockpit import qr
from workshop.cockpit.board import AWAY_SECONDS, BadReport, Board
from workshop.cockpit.network import is_local_network, is_loopback, lan_addresses
from workshop.cockpit.room import RoomWatcher
from workshop.ports import busy_port_message, port_is_free

DEFAULT_PORT = 8002  # the chat is on 8000, the guide (make docs) on 8001
IDENTITY = "cello-workshop-cockpit"
PAGES = Path(__file__).parent
MAX_BODY = 64 * 1024
# A view gets at most this many updates a second, however busy the room.
MIN_PUSH_SECONDS = 0.1
KEEPALIVE_SECONDS = 15


def default_port() -> int:
    return int(os.environ.get("COCKPIT_PORT", DEFAULT_PORT))


class Hub:
    """A version number that goes up with every change, and a way to wait for it."""

    def __init__(self):
        self.version = 0
        self._changed = threading.Condition()
        self.closed = False

    def bump(self) -> None:
        with self._changed:
            self.version += 1
            self._changed.notify_all()

    def wait_past(self, version: int, timeout: float) -> int:
        with self._changed:
            self._changed.wait_for(
                lambda: self.version > version or self.closed, timeout=timeout
            )
            return self.version

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()


class Cockpit:
    """The state behind both views, and the server that shows it."""

    def __init__(
        self,
        chat_url: str,
        join_url: str | None = None,
        away_seconds: float = AWAY_SECONDS,
    ):
        self.hub = Hub()
        self.lock = threading.Lock()
        self.board = Board(away_seconds=away_seconds)
        self.checkpoint: dict | None = None  # {"key", "title"} when make demo said
        self.chat_url = chat_url.rstrip("/")
        self.join_url = join_url or self.guess_join_url(self.chat_url)
        self.join_url_given = join_url is not None
        self.watcher = RoomWatcher(self.chat_url, changed=self.hub.bump)
        self.httpd: ThreadingHTTPServer | None = None
        # The board as JSON, worked out once per change for every view: (version, text).
        self._board_json: tuple[int, str] = (-1, "")
        self._away: frozenset = frozenset()
        self._stopped = threading.Event()
        self.started = time.time()
        self.reports = 0

    @staticmethod
    def guess_join_url(chat_url: str) -> str:
        """The chat's address as the room reaches it: this machine's LAN address."""
        port = urllib.parse.urlsplit(chat_url).port or 80
        addresses = lan_addresses()
        return f"http://{addresses[0] if addresses else '127.0.0.1'}:{port}"

    # --- what the views show ----------------------------------------------------------
    def room_state(self) -> dict:
        with self.lock:
            return {
                **self.watcher.snapshot(),
                "join_url": self.join_url,
                "checkpoint": self.checkpoint,
            }

    def board_state(self) -> dict:
        with self.lock:
            state = self.board.snapshot()
        state["reports"] = self.reports
        # Bound to loopback only (a test, or --host 127.0.0.1), the room cannot report here.
        state["lan"] = not (
            self.httpd and is_loopback(str(self.httpd.server_address[0]))
        )
        state["share_hosts"] = [
            f"{address}:{self.port}" if self.port != DEFAULT_PORT else address
            for address in (lan_addresses() if state["lan"] else [])
        ]
        return state

    def board_json(self) -> str:
        version = self.hub.version
        if self._board_json[0] != version:
            self._board_json = (version, json.dumps(self.board_state()))
        return self._board_json[1]

    def room_json(self) -> str:
        return json.dumps(self.room_state())

    def _watch_the_clock(self) -> None:
        """Nobody reports when a learner goes away: the views hear it from here."""
        while not self._stopped.is_set():
            now = time.time()
            with self.lock:
                away = frozenset(
                    seat
                    for seat, learner in self.board.learners.items()
                    if self.board.away(learner, now)
                )
            if away != self._away:
                self._away = away
                self.hub.bump()
            self._stopped.wait(1.0)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1] if self.httpd else DEFAULT_PORT

    # --- changes ----------------------------------------------------------------------
    def report(self, payload) -> dict:
        with self.lock:
            learner = self.board.report(payload)
            self.reports += 1
        self.hub.bump()
        return {"ok": True, "name": learner.name, "current": learner.current}

    def set_room(self, payload) -> dict:
        """make demo serves another checkpoint: follow it."""
        if not isinstance(payload, dict) or not isinstance(
            payload.get("chat_url"), str
        ):
            raise BadReport('Send {"chat_url": "http://127.0.0.1:PORT", ...}.')
        chat_url = payload["chat_url"].rstrip("/")
        if not urllib.parse.urlsplit(chat_url).scheme.startswith("http"):
            raise BadReport("chat_url is an http:// address.")
        with self.lock:
            self.chat_url = chat_url
            if isinstance(payload.get("join_url"), str):
                self.join_url = payload["join_url"]
            elif not self.join_url_given:
                self.join_url = self.guess_join_url(chat_url)
            checkpoint = payload.get("checkpoint")
            self.checkpoint = checkpoint if isinstance(checkpoint, dict) else None
        self.watcher.follow(chat_url)
        self.hub.bump()
        return {"ok": True}

    # --- life cycle -------------------------------------------------------------------
    def serve(self, host: str, port: int) -> "Cockpit":
        handler = type("Handler", (CockpitHandler,), {"cockpit": self})
        self.httpd = Server((host, port), handler)
        threading.Thread(
            target=self.httpd.serve_forever, name="cockpit-http", daemon=True
        ).start()
        self.watcher.start()
        threading.Thread(target=self._watch_the_clock, name="away", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.hub.close()
        self.watcher.stop()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # A room's check runs arrive together: the default backlog of 5 drops connections, and a
    # dropped one is retried after a whole second, past the learners' SEND_SECONDS.
    request_queue_size = 256


class CockpitHandler(BaseHTTPRequestHandler):
    cockpit: Cockpit
    server_version = "workshop-cockpit"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # a terminal full of GET lines would hide what matters

    # --- answers ----------------------------------------------------------------------
    def _send(self, status: int, body: bytes, kind: str, extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _peer(self) -> str:
        return self.client_address[0]

    def _page(self, name: str) -> None:
        body = (PAGES / name).read_bytes()
        self._send(
            200,
            body,
            "text/html; charset=utf-8",
            {
                "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                "script-src 'self' 'unsafe-inline'; img-src 'self' data:"
            },
        )

    # --- routes -----------------------------------------------------------------------
    def do_GET(self):  # noqa: N802 (the base class's name)
        path = urllib.parse.urlsplit(self.path).path
        if path == "/api/hello":  # the room's tools ask whether a cockpit is here
            if not is_local_network(self._peer()):
                return self._error(403, "The cockpit answers its local network only.")
            return self._json(200, {"cockpit": IDENTITY})
        if not is_loopback(self._peer()):
            return self._error(
                403,
                "The instructor's views are shown on the instructor's machine only; "
                "learners share their progress with `make share`.",
            )
        routes = {
            "/": lambda: self._page("index.html"),
            "/projector": lambda: self._page("projector.html"),
            "/dashboard": lambda: self._page("dashboard.html"),
            "/api/room": lambda: self._json(200, self.cockpit.room_state()),
            "/api/board": lambda: self._send(
                200, self.cockpit.board_json().encode(), "application/json"
            ),
            "/qr.svg": self._qr,
            "/export.csv": self._csv,
        }
        if path in routes:
            return routes[path]()
        if path.startswith("/api/events/"):
            return self._events(path.removeprefix("/api/events/"))
        return self._error(404, f"Nothing at {path}: see /projector and /dashboard.")

    do_HEAD = do_GET  # noqa: N815

    def do_POST(self):  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        if path not in ("/api/report", "/api/room"):
            return self._error(404, f"Nothing to post at {path}.")
        allowed = is_local_network if path == "/api/report" else is_loopback
        if not allowed(self._peer()):
            return self._error(403, "The cockpit answers its local network only.")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._error(411, "A Content-Length header is needed.")
        if length > MAX_BODY:
            return self._error(413, f"A report is at most {MAX_BODY} bytes.")
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            return self._error(400, "The body is not JSON.")
        action = self.cockpit.report if path == "/api/report" else self.cockpit.set_room
        try:
            return self._json(200, action(payload))
        except BadReport as problem:
            full = "full" in str(problem)
            status = HTTPStatus.SERVICE_UNAVAILABLE if full else HTTPStatus.BAD_REQUEST
            return self._error(status, str(problem))

    def _qr(self) -> None:
        self._send(200, qr.svg(self.cockpit.join_url).encode(), "image/svg+xml")

    def _csv(self) -> None:
        with self.cockpit.lock:
            text = self.cockpit.board.csv_text()
        stamp = time.strftime("%Y-%m-%d-%H%M")
        self._send(
            200,
            text.encode(),
            "text/csv; charset=utf-8",
            {"Content-Disposition": f'attachment; filename="progress-{stamp}.csv"'},
        )

    def _events(self, view: str) -> None:
        """Server-sent events: the view's whole state, each time it changes."""
        states = {"room": self.cockpit.room_json, "board": self.cockpit.board_json}
        if view not in states:
            return self._error(404, "Views: /api/events/room, /api/events/board.")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        hub, version = self.cockpit.hub, -1
        try:
            while not hub.closed:
                now = hub.wait_past(version, KEEPALIVE_SECONDS)
                if hub.closed:
                    return
                if now == version:
                    self.wfile.write(b": still here\n\n")
                else:
                    version = now
                    self.wfile.write(f"data: {states[view]()}\n\n".encode())
                self.wfile.flush()
                time.sleep(MIN_PUSH_SECONDS)  # changes meanwhile go out together
        except (BrokenPipeError, ConnectionResetError):
            return


# --- running it -----------------------------------------------------------------------


def running_cockpit(port: int) -> bool:
    """Whether a cockpit already answers on this machine's port."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/hello", timeout=1
        ) as answer:
            return json.load(answer).get("cockpit") == IDENTITY
    except (OSError, ValueError, AttributeError):
        return False


def tell_cockpit(port: int, room: dict) -> bool:
    """Ask the cockpit running on port to follow another chat (make demo N does)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/room",
        data=json.dumps(room).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2):
            return True
    except (OSError, ValueError):
        return False


def share_command(port: int) -> list[str]:
    """What learners type to share their progress with this machine."""
    suffix = "" if port == DEFAULT_PORT else f":{port}"
    return [f"make share HOST={address}{suffix}" for address in lan_addresses()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=default_port())
    parser.add_argument(
        "--host",
        default="0.0.0.0",
        help="where learners' reports arrive (default: every interface)",
    )
    parser.add_argument(
        "--chat",
        default=f"http://127.0.0.1:{os.environ.get('PORT', 8000)}",
        help="the chat the projector view follows (default: %(default)s)",
    )
    parser.add_argument(
        "--join-url", help="the address the room types (default: guessed)"
    )
    parser.add_argument(
        "--away-minutes",
        type=float,
        default=AWAY_SECONDS / 60,
        help="a learner silent this long is shown as away (default: %(default)g)",
    )
    args = parser.parse_args(argv)
    if not port_is_free(args.port, args.host):
        message = busy_port_message(args.port, args.host).replace(
            "make ...", "make dashboard"
        )
        print(f"error: {message}", file=sys.stderr)
        return 1
    cockpit = Cockpit(args.chat, args.join_url, away_seconds=args.away_minutes * 60)
    cockpit.serve(args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C stops us even if whoever started us ignores it (a parent's SIG_IGN is inherited).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    base = f"http://127.0.0.1:{args.port}"
    print(f"The instructor's cockpit is running (following the chat at {args.chat}):")
    print(f"    Projector view:  {base}/projector")
    print(f"    Class progress:  {base}/dashboard")
    commands = share_command(args.port)
    if commands:
        print("Learners share their progress with:  " + "   or   ".join(commands))
    else:
        print("(No network address found: learners cannot reach this machine yet.)")
    print(
        "Nothing is saved: export the CSV from the dashboard before you stop. "
        "Ctrl-C stops.",
        flush=True,
    )
    try:
        threading.Event().wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        with cockpit.lock:
            kept = len(cockpit.board.learners)
        cockpit.stop()
        print(f"\nThe cockpit stopped; the progress of {kept} learner(s) is forgotten.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
