"""One load-generator process: holds a share of the bench's participants.

The runner (bench/run.py) starts several of these so that the clients are not
the bottleneck. Each one speaks just enough WebSocket to be cheap per message:
a hand-written client (handshake, masked frames out, unmasked frames in) on
asyncio Protocols, instead of a full client library whose per-message cost
would dominate at a million deliveries per second.

Control: one JSON command per line on stdin, one JSON reply per line on stdout.
Timestamps are time.monotonic_ns(), which every process on the machine shares.
"""

import asyncio
import base64
import json
import os
import struct
import sys
import time
import zlib
from typing import Any

FIONREAD: int | None  # how many bytes wait in a socket: Linux and macOS
try:
    import fcntl
    import termios

    FIONREAD = termios.FIONREAD
except ImportError:
    FIONREAD = None

PROBE = b"bench:p:"  # latency probes: bench:p:<probe id>
FLOOD = b"bench:f:"  # throughput messages: bench:f:<worker>.<conn>.<seq>

PING = b'{"type": "ping"'
COMPRESSION_OFFER = (
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
)
PONG = '{"type": "pong"}'

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def client_frame(opcode, payload):
    """A masked client frame. The mask key is all zeros: legal, and it spares the
    XOR (masking protects proxies from hostile pages, there is no proxy here)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + b"\0\0\0\0" + payload


class Participant(asyncio.BufferedProtocol):
    """One chat participant: counts what it receives, reports probes and floods.

    A BufferedProtocol reads into one preallocated buffer: a plain Protocol has
    asyncio allocate 256 KiB per read, which costs more than the rest of the
    client put together at these message rates."""

    def __init__(self, worker, index):
        self.worker = worker
        self.index = index
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # connection_made
        self.handshaken = asyncio.get_running_loop().create_future()
        self.closed = False
        self.buffer = b""
        # Set when the server compresses its messages (permessage-deflate).
        self.inflater: Any = None
        self.fresh_inflater = (
            False  # server_no_context_takeover: a new inflater for each message
        )
        self.in_flight = 0  # flood messages sent and not yet seen back
        self.sent_ns = {}  # flood seq -> send time, for the sender's own round trips
        self.seq = 0
        self.next_send_ns = 0
        self.timer_armed = False

    def connection_made(self, transport):
        self.transport = transport

    def unread_bytes(self) -> int:
        """Bytes that reached this participant's socket and were not read yet."""
        if FIONREAD is None or self.closed:
            return 0
        try:
            fd = self.transport.get_extra_info("socket").fileno()
            return struct.unpack("i", fcntl.ioctl(fd, FIONREAD, b"\0" * 4))[0]
        except (OSError, AttributeError, ValueError):
            return 0

    def connection_lost(self, exc):
        self.closed = True
        if not self.handshaken.done():
            self.handshaken.set_exception(ConnectionError("closed during handshake"))
        elif not self.handshaken.exception():
            self.worker.live -= 1

    def send_text(self, text):
        if not self.closed:
            self.transport.write(client_frame(OP_TEXT, text.encode()))

    def get_buffer(self, sizehint):
        return self.worker.read_buffer

    def buffer_updated(self, nbytes):
        data = bytes(self.worker.read_buffer[:nbytes])
        buffer = self.buffer + data if self.buffer else data
        if not self.handshaken.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            status = buffer[: buffer.find(b"\r\n")]
            if b" 101 " not in status:
                self.handshaken.set_exception(
                    ConnectionError(status.decode(errors="replace"))
                )
                self.transport.close()
                return
            extensions = [
                line
                for line in buffer[:end].lower().split(b"\r\n")
                if line.startswith(b"sec-websocket-extensions:")
            ]
            if extensions and b"permessage-deflate" in extensions[0]:
                self.inflater = zlib.decompressobj(-15)
                self.fresh_inflater = b"server_no_context_takeover" in extensions[0]
            self.handshaken.set_result(True)
            self.worker.live += 1
            buffer = buffer[end + 4 :]
        position, size = 0, len(buffer)
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length, start = second & 0x7F, position + 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                start = position + 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                start = position + 10
            if size < start + length:
                break
            payload = buffer[start : start + length]
            position = start + length
            opcode = first & 0x0F
            if opcode == OP_TEXT:
                if first & 0x40:  # RSV1: a compressed message (RFC 7692)
                    if self.fresh_inflater:
                        self.inflater = zlib.decompressobj(-15)
                    payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
                self.worker.on_text(self, payload)
            elif opcode == OP_PING:
                self.transport.write(client_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.transport.write(client_frame(OP_CLOSE, payload[:2]))
                self.transport.close()
                return
        self.buffer = buffer[position:]


class Worker:
    def __init__(self, worker_id):
        self.worker_id = worker_id
        self.participants = []
        self.live = 0  # participants handshaken and not yet closed
        self.read_buffer = memoryview(bytearray(65536))  # shared: one read at a time
        # probe id -> [participants who got it, latest arrival ns, first arrival ns]
        self.probe_seen = {}
        self.probe_waiters = {}  # probe id -> future resolved when all live conns saw it
        self.flood = None  # dict while a flood window is being counted

    # -- events from participants -------------------------------------------------
    def on_text(self, participant, payload):
        now = time.monotonic_ns()
        at = payload.find(b"bench:")
        if at < 0:
            if payload.startswith(PING):
                # The finished app drops participants that never answer.
                participant.send_text(PONG)
            return
        kind = payload[at : at + 8]
        if kind == PROBE:
            probe_id = int(payload[at + 8 : payload.index(b'"', at)])
            seen = self.probe_seen.setdefault(probe_id, [0, 0, 0])
            if not seen[0]:
                seen[2] = now  # the first participant here to get it
            seen[0] += 1
            seen[1] = now
            waiter = self.probe_waiters.get(probe_id)
            if waiter is not None and not waiter.done() and seen[0] >= self.live:
                waiter.set_result(None)
        elif kind == FLOOD and self.flood is not None:
            flood = self.flood
            if flood["start"] <= now < flood["end"]:
                flood["deliveries"] += 1
            tag = payload[at + 8 : payload.index(b'"', at)].split(b".")
            if int(tag[0]) == self.worker_id and int(tag[1]) == participant.index:
                sent = participant.sent_ns.pop(int(tag[2]), None)
                if sent is not None:
                    participant.in_flight -= 1
                    flood["round_trips"].append(now - sent)
                    self.send_flood(participant)

    # -- commands -----------------------------------------------------------------
    async def connect(self, host, port, path, count, concurrency, offer_compression):
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        failures = []

        async def open_one(index):
            async with gate:
                participant = Participant(self, len(self.participants) + index)
                try:
                    await loop.create_connection(lambda: participant, host, port)
                    key = base64.b64encode(os.urandom(16)).decode()
                    participant.transport.write(
                        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        # What every browser offers; a server may accept it (and compress) or not.
                        f"{COMPRESSION_OFFER if offer_compression else ''}\r\n".encode()
                    )
                    await asyncio.wait_for(participant.handshaken, 30)
                    return participant
                except (TimeoutError, OSError, ConnectionError) as error:
                    failures.append(repr(error))
                    if participant.transport is not None:
                        participant.transport.close()
                    return None

        opened = await asyncio.gather(*(open_one(i) for i in range(count)))
        self.participants.extend(p for p in opened if p is not None)
        for position, participant in enumerate(self.participants):
            participant.index = (
                position  # commands name participants by their place in this list
            )
        return {
            "connected": len(self.participants),
            "failed": len(failures),
            "errors": sorted(set(failures))[:3],
        }

    async def probe(self, probe_id, sender, timeout):
        """Send probe `probe_id` from participant `sender` (if it is ours) and
        report when every live participant here has received it."""
        waiter = asyncio.get_running_loop().create_future()
        self.probe_waiters[probe_id] = waiter
        sent_ns = None
        if sender is not None:
            sent_ns = time.monotonic_ns()
            self.participants[sender].send_text(
                json.dumps({"type": "chat", "message": f"bench:p:{probe_id}"})
            )
        seen = self.probe_seen.setdefault(probe_id, [0, 0, 0])
        if seen[0] >= self.live:
            waiter.set_result(None)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        del self.probe_waiters[probe_id]
        count, last, first = self.probe_seen.pop(probe_id)
        return {
            "probe": probe_id,
            "sent_ns": sent_ns,
            "last_ns": last,
            "first_ns": first,
            "received": count,
            "live": self.live,
        }

    async def run_flood(self, senders, start_ns, duration, window, interval):
        """Each sender keeps at most `window` messages in flight and sends at most
        one every `interval` seconds (under the server's rate limit). Deliveries of
        flood messages to every participant here are counted inside the window."""
        loop = asyncio.get_running_loop()
        self.flood = flood = {
            "start": start_ns,
            "end": start_ns + int(duration * 1e9),
            "deliveries": 0,
            "round_trips": [],
            "sent": 0,
            "window": window,
            "interval_ns": int(interval * 1e9),
        }
        chosen = [self.participants[i] for i in senders]
        await asyncio.sleep(max(start_ns - time.monotonic_ns(), 0) / 1e9)
        cpu_start = time.process_time()
        for participant in chosen:
            participant.next_send_ns = start_ns
            self.send_flood(participant)
        unread = []  # five times a second: bytes waiting in all our sockets
        while (left := flood["end"] - time.monotonic_ns()) > 0:
            await asyncio.sleep(min(0.2, left / 1e9))
            unread.append(sum(p.unread_bytes() for p in self.participants))
        cpu_window = time.process_time() - cpu_start
        # Let what is in flight arrive so the next phase starts from a quiet room.
        deadline = loop.time() + 10
        while (
            any(p.in_flight and not p.closed for p in chosen) and loop.time() < deadline
        ):
            await asyncio.sleep(0.01)
        self.flood = None
        for participant in chosen:
            participant.sent_ns.clear()
            participant.in_flight = 0
        trips = sorted(flood["round_trips"])
        return {
            "deliveries": flood["deliveries"],
            "sent": flood["sent"],
            "cpu_seconds": cpu_window,
            "round_trip_ms_p50": trips[len(trips) // 2] / 1e6 if trips else None,
            "live": self.live,
            "unread_bytes": unread,
        }

    def send_flood(self, participant):
        """Send the participant's next flood message if its window and pace allow,
        else come back when they do (on its echo, or on a timer)."""
        flood = self.flood
        if (
            flood is None
            or participant.closed
            or participant.in_flight >= flood["window"]
        ):
            return
        now = time.monotonic_ns()
        if now >= flood["end"]:
            return
        if now < participant.next_send_ns:
            if not participant.timer_armed:
                participant.timer_armed = True
                asyncio.get_running_loop().call_later(
                    (participant.next_send_ns - now) / 1e9,
                    self.timer_fired,
                    participant,
                )
            return
        seq = participant.seq
        participant.seq += 1
        participant.sent_ns[seq] = now
        participant.in_flight += 1
        participant.next_send_ns = max(
            participant.next_send_ns + flood["interval_ns"], now
        )
        flood["sent"] += 1
        participant.send_text(
            json.dumps(
                {
                    "type": "chat",
                    "message": f"bench:f:{self.worker_id}.{participant.index}.{seq}",
                }
            )
        )

    def timer_fired(self, participant):
        participant.timer_armed = False
        self.send_flood(participant)

    def close_all(self):
        for participant in self.participants:
            if not participant.closed:
                participant.transport.write(
                    client_frame(OP_CLOSE, struct.pack("!H", 1000))
                )
                participant.transport.close()
        return {"closed": True}


async def main():
    worker = Worker(int(sys.argv[1]))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )

    async def answer(command):
        name = command.pop("cmd")
        if name == "connect":
            reply = await worker.connect(**command)
        elif name == "probe":
            reply = await worker.probe(**command)
        elif name == "flood":
            reply = await worker.run_flood(**command)
        elif name == "close":
            reply = worker.close_all()
        else:
            reply = {"error": f"unknown command {name}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    while line := await reader.readline():
        await answer(json.loads(line))
    worker.close_all()
    await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main())
