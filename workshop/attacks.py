"""A hostile participant, for the guard chapter's checks: what one script on one address can do to
the chat, at a size the checks can afford.

The attacker's sockets come from ATTACKER (127.0.0.2) and the participant who measures the room from
127.0.0.1: both are this machine's loopback, but the chat sees two addresses, as it would see two
devices. Everything here is bounded (a count, a deadline) and closes what it opened.

    with half_sent_heads(server, 10_200) as heads: ...        # unfinished HTTP request heads
    with unfinished_messages(server, 24, 4 * MiB) as held: ... # fragmented messages, never finished
    with idle_websockets(server, 500) as sockets: ...          # joined, and silent
    status, headers, body = http_request(server, "POST", "/")
"""

import base64
import contextlib
import errno
import fcntl
import json
import os
import socket
import struct
import sys
import termios
import time

import psutil

from workshop.harness import WAIT_SECONDS, ChatServer

ATTACKER = "127.0.0.2"
MiB = 1 << 20
# Linux: bind() to an address and leave the port to connect(), which may then reuse ports.
IP_BIND_ADDRESS_NO_PORT = 24
MAC_ALIAS = "sudo ifconfig lo0 alias 127.0.0.2 up"


class AttackerUnavailable(Exception):
    """This machine cannot play the attacker (no second loopback address, too few files)."""


def can_bind_attacker() -> str | None:
    """None if sockets can come from ATTACKER, else why not and what to do."""
    with socket.socket() as probe:
        try:
            probe.bind((ATTACKER, 0))
        except OSError as error:
            fix = (
                f" Run `{MAC_ALIAS}` once (macOS)." if sys.platform == "darwin" else ""
            )
            return f"This machine cannot send from {ATTACKER} ({error}).{fix}"
    return None


def attacker_socket(server: ChatServer, timeout: float = WAIT_SECONDS) -> socket.socket:
    """A TCP connection to the server from ATTACKER. Closing it resets the connection (no
    TIME_WAIT), so that repeated runs never run out of ports."""
    sock = socket.socket()
    try:
        if sys.platform.startswith("linux"):
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.bind((ATTACKER, 0))
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", server.port))
    except BaseException:
        sock.close()
        raise
    return sock


def allow_files(count: int) -> None:
    """Raise this process's limit of open files to `count`, or say why it cannot."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= count:
        return
    if hard != resource.RLIM_INFINITY and hard < count:
        raise AttackerUnavailable(
            f"This attack needs {count:,} open files and this machine allows a process {hard:,} "
            "(`ulimit -Hn`)."
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


# --- HTTP ---------------------------------------------------------------------------------------------------------


def http_request(
    server: ChatServer, method: str, path: str, source: str = ATTACKER
) -> tuple[int | None, dict, bytes]:
    """One raw HTTP/1.1 request with any method: (status, headers with lower-case names, body)."""
    sock = socket.socket()
    try:
        sock.bind((source, 0))
        sock.settimeout(WAIT_SECONDS)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):
                data += chunk
    finally:
        sock.close()
    if not data:
        return None, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


# --- Half-sent request heads ---------------------------------------------------------------------------------------

PARTIAL_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\nX-Wait: "


@contextlib.contextmanager
def half_sent_heads(server: ChatServer, count: int, seconds: float = 30):
    """`count` connections from ATTACKER, each with a request head it never finishes, opened as
    fast as the machine allows (at most `seconds`). Yields the open sockets; closes them all."""
    allow_files(count + 200)
    sockets: list[socket.socket] = []
    deadline = time.monotonic() + seconds
    try:
        while len(sockets) < count and time.monotonic() < deadline:
            try:
                # A SYN dropped by a full listen queue waits 1 s: a new socket is quicker.
                sock = attacker_socket(server, timeout=0.1)
                sock.sendall(PARTIAL_HEAD)
            except OSError:
                continue  # the listen queue overflowed, or the server closed it: try again
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


# --- WebSockets ------------------------------------------------------------------------------------------------------


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame (an all-zero mask key leaves the payload as it is)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    return header + b"\0\0\0\0" + payload


def open_websocket(server: ChatServer) -> tuple[socket.socket, bytes]:
    """A WebSocket on /ws/chat from ATTACKER: the socket, and what arrived after the handshake."""
    sock = attacker_socket(server)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(
                    "the server closed the connection during the handshake"
                )
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"the handshake was refused: {head[:100]!r}")
    except BaseException:
        sock.close()
        raise
    return sock, rest


def next_frame(data: bytes) -> tuple[int, bytes, bytes] | None:
    """(opcode, payload, the bytes after it) of the first whole server frame in data, or None."""
    if len(data) < 2:
        return None
    size, start = data[1] & 0x7F, 2
    if size == 126:
        size, start = (
            (struct.unpack("!H", data[2:4])[0], 4) if len(data) >= 4 else (0, 0)
        )
    elif size == 127:
        size, start = (
            (struct.unpack("!Q", data[2:10])[0], 10) if len(data) >= 10 else (0, 0)
        )
    if not start or len(data) < start + size:
        return None
    return data[0] & 0x0F, data[start : start + size], data[start + size :]


def first_text(
    sock: socket.socket, data: bytes, timeout: float = WAIT_SECONDS
) -> str | None:
    """The first text message the server sends on a WebSocket (given what was read already);
    None if it closes the connection first, or says nothing in time."""
    deadline = time.monotonic() + timeout
    while True:
        while found := next_frame(data):
            opcode, payload, data = found
            if opcode == 0x1:
                return payload.decode(errors="replace")
            if opcode == 0x8:
                return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk


@contextlib.contextmanager
def idle_websockets(server: ChatServer, count: int):
    """`count` WebSockets from ATTACKER that join and then say nothing and read nothing. Yields
    [(socket, what arrived after its handshake)]; closes them all."""
    allow_files(count + 200)
    opened = []
    try:
        for _ in range(count):
            opened.append(open_websocket(server))
        yield opened
    finally:
        for sock, _ in opened:
            sock.close()


def unsent_bytes(sock: socket.socket) -> int:
    """Bytes this socket has sent that the other side has not read yet (Linux); 0 elsewhere."""
    if not sys.platform.startswith("linux"):
        return 0
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[
        0
    ]


def closed_by_server(sock: socket.socket, data: bytes) -> bool:
    """Whether the server has sent this WebSocket its close frame (given what was read
    already), looking at what has arrived without reading it."""
    try:
        data += sock.recv(MiB, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        pass
    except OSError:
        return True  # reset: closed
    while found := next_frame(data):
        opcode, _, data = found
        if opcode == 0x8:
            return True
    return False


@contextlib.contextmanager
def unfinished_messages(server: ChatServer, count: int, size: int):
    """`count` WebSockets from ATTACKER, each sending `size` bytes of one text message in 1 MiB
    fragments and never its last fragment. Yields the sockets the server kept open (not those
    it refused, even at the handshake), once it has read all they sent; closes them all."""
    allow_files(count + 200)
    kept, refused = [], []
    arrived: dict[socket.socket, bytes] = {}  # what came after each one's handshake
    try:
        for _ in range(count):
            try:
                sock, arrived[sock] = open_websocket(server)
            except ConnectionError:  # refused at the door (a reset, a closed handshake)
                continue  # the server holds nothing of it
            sent = 0
            try:
                while sent < size:
                    part = min(MiB, size - sent)
                    sock.sendall(
                        frame(0x1 if sent == 0 else 0x0, b"a" * part, fin=False)
                    )
                    sent += part
            except OSError as error:  # closed by the server: it reads no more of it
                if error.errno not in (errno.EPIPE, errno.ECONNRESET, None):
                    raise
                refused.append(sock)
                continue
            kept.append(sock)
        # Wait until the server has read what the kept ones sent (what it buffers is then in its RSS).
        # One the server refused while its fragments were still on the way keeps them unread
        # for good: it counts as refused, not as one to wait for.
        deadline = time.monotonic() + 3 * WAIT_SECONDS
        while time.monotonic() < deadline:
            unread = [sock for sock in kept if unsent_bytes(sock)]
            for sock in unread:
                if closed_by_server(sock, arrived[sock]):
                    kept.remove(sock)
                    refused.append(sock)
            if not any(unsent_bytes(sock) for sock in kept):
                break
            time.sleep(0.02)
        yield kept
    finally:
        for sock in kept + refused:
            sock.close()


# --- The server's side -----------------------------------------------------------------------------------------------


def server_memory(server: ChatServer) -> int:
    """The server process's resident memory (RSS), in bytes."""
    return psutil.Process(server.process.pid).memory_info().rss


def round_trip(client, text: str) -> float:
    """Seconds from `client` saying `text` to hearing it back from the room."""
    started = time.perf_counter()
    client.say(text)
    client.wait_for(
        lambda m: m.get("type") == "chat" and m.get("message") == text, repr(text)
    )
    return time.perf_counter() - started


def describe_message(text: str | None) -> str:
    if text is None:
        return "nothing (the connection was closed without a word)"
    try:
        return json.dumps(json.loads(text))
    except json.JSONDecodeError:
        return repr(text)
