"""Is a TCP port free, and if not, who holds it?

Cello starts *without error* on a port another server already listens on (it sets SO_REUSEPORT) and the
kernel then splits the connections between the two servers: half the room would silently join the wrong
chat. So every way of starting a server in this workshop asks here first.
"""

import errno
import os
import socket
from pathlib import Path

GUIDE_PORT = 8001  # mkdocs.yml's dev_addr


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    # A plain bind (no SO_REUSEPORT) fails while any socket listens on the port, even one that shares it.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Ignore TIME_WAIT leftovers.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "0A":  # 0A = LISTEN
                inodes.add(fields[9])
    return inodes


def who_listens(port: int) -> str | None:
    """'pid 4242: python -m workshop.serve steps/step3', or None where /proc does not tell (macOS, other users)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                try:
                    command = (
                        Path(f"/proc/{pid}/cmdline")
                        .read_bytes()
                        .replace(b"\0", b" ")
                        .decode()
                        .strip()
                    )
                except OSError:
                    command = "?"
                return f"pid {pid}: {command}"
    return None


def suggest_port(busy: int, host: str) -> int:
    """The next free port after `busy`, never the guide's 8001 (`make docs` wants it in a workshop)."""
    for candidate in range(busy + 1, busy + 100):
        if candidate != GUIDE_PORT and port_is_free(candidate, host):
            return candidate
    return free_port()


def busy_port_message(port: int, host: str) -> str:
    holder = who_listens(port)
    held_by = f" It is held by {holder}." if holder else ""
    return (
        f"Port {port} on {host} is already in use.{held_by}\n"
        f"Cello would start anyway and silently share the port with that server, so half the room would land there.\n"
        f"Stop the other server (Ctrl-C in its terminal), or pick another port: PORT={suggest_port(port, host)} make ..."
    )
