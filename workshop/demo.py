"""make demo: serve a checkpoint to a room of laptops and phones, with the projector view.

    python -m workshop demo            the finished chat (course.toml's `finished`)
    python -m workshop demo 5          checkpoint 5 (solutions/step5); `make demo 5`, `make demo N=5`
    python -m workshop demo room       a chapter after the seven steps

Serves the checkpoint's solution on all interfaces (0.0.0.0), prints the addresses the room can
open (one per network interface of this machine) with a QR code of the first, what the room can
do at this checkpoint, then the number of participants each time it changes. The projector view
(http://127.0.0.1:8002/projector) comes from the instructor's cockpit: the one `make dashboard`
runs, or else one started here for as long as the demo runs. Refuses a port that is already in use
(Cello would share it and split the room). Ctrl-C stops the chat.

Anyone on the network can join, and the chat has no login: use it on a network you trust.
"""

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime

from workshop import processes
from workshop.cockpit import qr
from workshop.cockpit.network import lan_addresses
from workshop.cockpit.room import RoomWatcher
from workshop.cockpit.server import (
    Cockpit,
    default_port,
    running_cockpit,
    tell_cockpit,
)
from workshop.ports import busy_port_message, port_is_free
from workshop.steps import ROOT, finished, step

__all__ = ["lan_addresses", "main"]  # lan_addresses: its old home, for other tools
POLL_SECONDS = 0.5
STARTUP_SECONDS = 20
# How long the projector may take to join the chat and try what it can do.
PROBE_SECONDS = 15


def accepting(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Room:
    """Where the demo reads the room from: its own cockpit, the one make dashboard runs, or
    (when the cockpit's port is taken by something else) a watcher of its own."""

    def __init__(self, chat_url: str, join_url: str, checkpoint: dict, host: str):
        self.port = default_port()
        self.cockpit: Cockpit | None = None
        self.watcher: RoomWatcher | None = None
        self.external = False
        self.where = ""
        room = {"chat_url": chat_url, "join_url": join_url, "checkpoint": checkpoint}
        if running_cockpit(self.port) and tell_cockpit(self.port, room):
            self.external = True
            self.where = f"http://127.0.0.1:{self.port}"
        elif port_is_free(self.port, host):
            self.cockpit = Cockpit(chat_url, join_url)
            self.cockpit.checkpoint = checkpoint
            self.cockpit.serve(host, self.port)
            self.where = f"http://127.0.0.1:{self.port}"
        else:
            self.watcher = RoomWatcher(chat_url).start()

    def state(self) -> dict | None:
        if self.cockpit is not None:
            return self.cockpit.room_state()
        if self.watcher is not None:
            return self.watcher.snapshot()
        try:
            with urllib.request.urlopen(f"{self.where}/api/room", timeout=2) as answer:
                return json.load(answer)
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        if self.cockpit is not None:
            self.cockpit.stop()
        if self.watcher is not None:
            self.watcher.stop()


def checkpoint_of(args) -> dict:
    chosen = step(args.key) if args.key else finished()
    return {
        "key": chosen.key,
        "title": chosen.title,
        "label": chosen.label.capitalize(),
        "folder": str(args.app or chosen.solution_dir),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "key", nargs="?", help="a step or chapter (default: the finished chat)"
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--host", default="0.0.0.0", help="interface to serve on (default: all of them)"
    )
    parser.add_argument(
        "--app", help="serve this folder instead of the step's solution"
    )
    args = parser.parse_args(argv)
    try:
        checkpoint = checkpoint_of(args)
    except ValueError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    if not port_is_free(args.port, args.host):
        print(
            f"error: {busy_port_message(args.port, args.host)}".replace(
                "make ...", "make demo"
            ),
            file=sys.stderr,
        )
        return 1

    # A plain `kill` stops the chat too (see finally)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C stops us even if whoever started us ignores it (a parent's SIG_IGN is inherited).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Cello's banner would print the 0.0.0.0 address, which no phone can open: we print the real ones instead.
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workshop.serve",
            checkpoint["folder"],
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--no-logs",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    room = None
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not accepting(args.port):
            if server.poll() is not None or time.monotonic() > deadline:
                print(
                    f"error: the chat did not start (exit status {server.poll()})",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.1)

        addresses = lan_addresses() if args.host == "0.0.0.0" else [args.host]
        join_urls = [f"http://{address}:{args.port}" for address in addresses]
        chat_url = f"http://127.0.0.1:{args.port}"
        room = Room(chat_url, (join_urls or [chat_url])[0], checkpoint, args.host)
        state = wait_for_projector(room, server)

        print(
            f"Serving {checkpoint['label'].lower()} ({checkpoint['title']}) on port "
            f"{args.port}. Ask the room to open:"
        )
        for url in join_urls:
            print(f"    {url}")
        if not join_urls:
            print(
                "    (no network address found: is this machine connected to the room's network?)"
            )
        print(f"On this machine: {chat_url}    Ctrl-C stops the chat.")
        if join_urls:
            print()
            print("\n".join("    " + line for line in qr.terminal_lines(join_urls[0])))
        print()
        if state:
            print("What the room can do: " + " ".join(state["abilities"]["sentences"]))
        if room.where:
            print(
                f"Projector view: {room.where}/projector    "
                f"Class progress: {room.where}/dashboard"
            )
        counts = bool(state and state["count"] is not None)
        if not counts:
            print(
                "(No participant count at this checkpoint: nobody hears anybody yet.)"
            )
        print(flush=True)

        shown = None
        while server.poll() is None:
            state = room.state() if counts else None
            count = state["count"] if state and state["connected"] else None
            if count is not None and count != shown:
                change = "" if shown is None else f" ({count - shown:+d})"
                plural = "s" if count != 1 else ""
                print(
                    f"{datetime.now():%H:%M:%S}  {count} participant{plural}{change}",
                    flush=True,
                )
                shown = count
            time.sleep(POLL_SECONDS)
        # A Ctrl-C reaches the chat and us at once, and on a busy machine the chat may be
        # quicker to stop: give our KeyboardInterrupt the time to arrive before calling it a crash.
        time.sleep(2)
        print(f"The chat stopped (exit status {server.returncode}).", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C in the terminal reached the server too: it is stopping, and a second Ctrl-C would
        # interrupt its clean-up (with a traceback). Give it a moment before stopping it ourselves.
        try:
            server.wait(2)
        except subprocess.TimeoutExpired:
            pass
        return 0
    finally:
        if room is not None:
            room.stop()
        processes.stop(server)


def wait_for_projector(room: Room, server) -> dict | None:
    """The room's state once the projector has joined and tried what the chat can do."""
    deadline = time.monotonic() + PROBE_SECONDS
    state = None
    while time.monotonic() < deadline and server.poll() is None:
        state = room.state()
        if state and state["connected"]:
            return state
        time.sleep(0.1)
    return state


if __name__ == "__main__":
    sys.exit(main())
