"""What a learner sees in a terminal after each step, from a real run of its solution.

The guide's "What you should see" (docs/hooks/step_code.py) shows docs/transcripts/<folder>.md.
`make test` (tests/test_guide_transcripts.py) runs every step's finished code and writes the file again
only when what it shows has changed, so a tracked file is never rewritten for nothing.

The same run for every step and chapter, shaped by what the server answers, not by a list kept by hand:
GET / (unless it is the chat page, which the browser checks' screenshot shows), two terminal clients on
/ws/chat when it accepts one (unless a screenshot shows the chat), and GET /users when it exists.
"""

import json
import time
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from workshop.harness import start_server
from workshop.steps import ROOT, Step

SHOWN_PORT = (
    8000  # what the learner's `make step N` uses, whatever free port the run had
)
DEPARTURE_SECONDS = (
    5  # how long terminal 1 waits to hear that terminal 2 left (step 3 never does)
)
PROBE = [
    "sync-probe"
]  # a JSON array: every step since 3 answers it with an error, in order


class Terminal:
    """`python -m websockets ws://...`: what the learner types (>) and receives (<), in order."""

    def __init__(self, url: str):
        self.socket = connect(url, open_timeout=10, close_timeout=1, legacy=True)
        shown = f"ws://127.0.0.1:{SHOWN_PORT}/ws/chat"
        self.lines = [f"$ python -m websockets {shown}", f"Connected to {shown}."]

    def type(self, text: str) -> None:
        self.lines.append(f"> {text}")
        self.socket.send(text)

    def settle(self) -> None:
        """Receive everything the server has sent so far: it answers a probe after it (in order)."""
        self.socket.send(json.dumps(PROBE))
        while True:
            frame = str(self.socket.recv(timeout=10))
            message = json.loads(frame)
            if message.get("type") == "error" and "array" in message.get("message", ""):
                return
            self.lines.append(f"< {frame}")

    def wait_for(self, text: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                frame = str(self.socket.recv(timeout=remaining))
            except (TimeoutError, ConnectionClosed):
                return
            self.lines.append(f"< {frame}")
            if text in frame:
                return

    def close(self) -> None:
        self.socket.close()


def run(step: Step, screenshot: bool) -> str:
    """The Markdown of what a learner sees in the terminal, run against solutions/<folder>."""
    server = start_server(step.solution_dir, env={"CHAT_HEARTBEAT_SECONDS": "3600"})
    try:
        try:
            first = Terminal(server.ws_url)
        except (
            Exception
        ):  # no WebSocket yet (steps 1 and 2): GET / is what there is to see
            _, _, body = server.get("/")
            return (
                _console(f"$ curl http://127.0.0.1:{SHOWN_PORT}/", body.rstrip()) + "\n"
            )
        terminals, users = _two_terminals(first, server)
    finally:
        server.stop()
    parts = [] if screenshot else [terminals]
    if users:
        parts.append("Meanwhile, in a third terminal:\n\n" + users if parts else users)
    return "\n\n".join(parts) + "\n" if parts else ""


def _two_terminals(first: Terminal, server) -> tuple[str, str]:
    """Ada and a second participant chat; GET /users (where it exists) while both are in."""
    url = server.ws_url
    first.settle()
    second = Terminal(url)
    second.settle()
    first.settle()
    first.type(json.dumps({"type": "set_name", "name": "Ada"}))
    first.settle()
    second.settle()
    first.type("hello, room")
    first.settle()
    second.settle()
    second.type("hi Ada!")
    second.settle()
    first.settle()
    status, _, body = server.get("/users")
    users = (
        _console(f"$ curl http://127.0.0.1:{SHOWN_PORT}/users", body.rstrip())
        if status == 200
        else ""
    )
    second.close()
    second.lines.append("(Ctrl-D)")
    first.wait_for("left the chat", DEPARTURE_SECONDS)
    first.close()
    terminals = (
        "In one terminal, where you become Ada:\n\n"
        + _console(*first.lines)
        + "\n\nand in a second one, at the same time:\n\n"
        + _console(*second.lines)
    )
    return terminals, users


def _console(*lines: str) -> str:
    return "```console\n" + "\n".join(lines) + "\n```"


def refresh(step: Step, screenshot: bool) -> tuple[Path, bool]:
    """Write docs/transcripts/<folder>.md if what it shows changed; (path, whether it was written)."""
    path = ROOT / "docs" / "transcripts" / f"{step.folder}.md"
    text = run(step, screenshot)
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if not text:
        if old is not None:
            path.unlink()
        return path, old is not None
    if text == old:
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, True
