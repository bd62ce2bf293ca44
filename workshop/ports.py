"""Is a TCP port free, and if not, who holds it?

Cello starts *without error* on a port another server already listens on (it sets SO_REUSEPORT) and the
kernel then splits the connections between the two servers: half the room would silently join the wrong
chat. So every way of starting a server in this workshop asks here first.
"""

import errno
import socket
import sys

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


def reserve_port(host: str = "127.0.0.1") -> tuple[int, socket.socket | None]:
    """A free port, and a socket that holds it until its server listens: bound, never
    listening, with SO_REUSEPORT as Cello's own, so Cello binds beside it while no other
    free-port pick gets it. On Linux only, where port_is_free still sees such a port as
    free (macOS refuses that bind; Windows has no SO_REUSEPORT): elsewhere, (port, None)."""
    if sys.platform != "linux":
        return free_port(host), None
    holder = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # port_is_free
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((host, 0))
    except OSError:
        holder.close()
        return free_port(host), None
    return holder.getsockname()[1], holder


def loopback_address(wanted: str) -> str:
    """`wanted` (127.0.0.2 plays another machine) if this computer can listen on it, else
    127.0.0.1: macOS has no other loopback address (scale.md#machines)."""
    with socket.socket() as probe:
        try:
            probe.bind((wanted, 0))
            return wanted
        except OSError:
            return "127.0.0.1"


def who_listens(port: int) -> str | None:
    """'pid 4242: python -m workshop.serve steps/step3', or None where the system does not
    tell (a process of another user)."""
    import psutil

    for pid in listeners(port):
        try:
            command = " ".join(psutil.Process(pid).cmdline()) or "?"
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            command = "?"
        return f"pid {pid}: {command}"
    return None


def listeners(port: int) -> list[int]:
    """Pids with a TCP socket listening on port. The whole table needs no privileges on
    Linux and Windows; on macOS it does, and each of our own processes is asked instead."""
    import psutil  # here, not above: every server a check starts imports this module

    try:
        return [
            c.pid for c in psutil.net_connections("tcp") if _listens(c, port) and c.pid
        ]
    except psutil.AccessDenied:
        pass
    found = []
    for process in psutil.process_iter():
        try:
            if any(_listens(c, port) for c in process.net_connections("tcp")):
                found.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _listens(connection, port: int) -> bool:
    import psutil

    return bool(
        connection.status == psutil.CONN_LISTEN
        and connection.laddr
        and connection.laddr.port == port
    )


def suggest_port(busy: int, host: str, avoid: tuple[int, ...] = (GUIDE_PORT,)) -> int:
    """The next free port after `busy`, never one of `avoid` (the guide's 8001: `make docs`
    wants it in a workshop)."""
    for candidate in range(busy + 1, busy + 100):
        if candidate not in avoid and port_is_free(candidate, host):
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
