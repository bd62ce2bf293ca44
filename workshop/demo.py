"""make demo: run the finished chat for a room of laptops and phones.

    python -m workshop.demo --port 8000

Serves solutions/step7 on all interfaces (0.0.0.0), prints the addresses the room can open (one per
network interface of this machine), then the number of participants each time it changes. Refuses a port
that is already in use (Cello would share it and split the room). Ctrl-C stops the chat.

Anyone on the network can join, and the chat has no login: use it on a network you trust.
"""

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime

from workshop import processes
from workshop.ports import busy_port_message, port_is_free
from workshop.steps import ROOT, finished

POLL_SECONDS = 0.5


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses that other devices can reach (not loopback, not link-local)."""
    found = []
    for command in (
        ["ip", "-4", "-o", "addr", "show"],
        ["ifconfig"],
    ):  # Linux; macOS and the BSDs
        try:
            output = subprocess.run(
                command, capture_output=True, text=True, timeout=5
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = re.findall(r"\binet (?:addr:)?(\d+\.\d+\.\d+\.\d+)", output)
        if found:
            break
    if not found:
        try:
            found = socket.gethostbyname_ex(socket.gethostname())[2]
        except OSError:
            found = []
    reachable = [a for a in found if not a.startswith(("127.", "169.254."))]
    return list(dict.fromkeys(reachable))  # in order, without repeats


def participants(port: int) -> int | None:
    """GET /users's count, or None while the server does not answer."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/users", timeout=2
        ) as response:
            return json.load(response)["count"]
    except (OSError, ValueError, KeyError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--host", default="0.0.0.0", help="interface to serve on (default: all of them)"
    )
    parser.add_argument(
        "--app",
        default=str(finished().solution_dir),
        help="the chat to serve (default: the finished one)",
    )
    args = parser.parse_args(argv)

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
    # Cello's banner would print the 0.0.0.0 address, which no phone can open: we print the real ones instead.
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workshop.serve",
            args.app,
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--no-logs",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while participants(args.port) is None:
            if server.poll() is not None or time.monotonic() > deadline:
                print(
                    f"error: the chat did not start (exit status {server.poll()})",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.1)

        print(f"The chat is running on port {args.port}. Ask the room to open:")
        addresses = lan_addresses() if args.host == "0.0.0.0" else [args.host]
        for address in addresses:
            print(f"    http://{address}:{args.port}")
        if not addresses:
            print(
                "    (no network address found: is this machine connected to the room's network?)"
            )
        print(
            f"On this machine: http://127.0.0.1:{args.port}    Ctrl-C stops the chat.\n",
            flush=True,
        )

        shown = None
        while server.poll() is None:
            count = participants(args.port)
            if count is not None and count != shown:
                change = "" if shown is None else f" ({count - shown:+d})"
                print(
                    f"{datetime.now():%H:%M:%S}  {count} participant{'s' if count != 1 else ''}{change}",
                    flush=True,
                )
                shown = count
            time.sleep(POLL_SECONDS)
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
        processes.stop(server)


if __name__ == "__main__":
    sys.exit(main())
