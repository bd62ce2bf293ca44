"""make bench: the finished chat against a reference server, same load, same run.

For each server it measures, with N participants (default 1,000):
  - participants held: how many of the N receive a message sent once all have joined;
  - time for one message to reach all of them (p50, p99 over sequential probes, quiet room);
  - deliveries per second while many participants chat at once (closed loop: each sender keeps
    at most --window messages in flight, and stays under the app's rate limit);
  - server memory per participant (growth of the server's RSS / N).
It prints both servers side by side with their ratio.

The participants live in several load-generator processes (bench/loadgen.py). To show that they are
not the bottleneck, it prints their CPU use and, sampled during the chat phase, how many bytes had
reached the participants' sockets without being read yet (near zero: the clients keep up).
Loopback only; Linux and macOS (psutil reads the processes' figures). Every process started
here is stopped here; --time-limit bounds the whole run.

    python bench/run.py                          # 1,000 participants, both servers
    python bench/run.py --participants 2000
    python bench/run.py --server "tutorial={python} some/app.py --port {port}"   # measure another server
    python bench/run.py --history                # chapter history's cost: the room chat without and with it
"""

import argparse
import contextlib
import json
import os
import platform
import random
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

import psutil

ROOT = Path(__file__).resolve().parent.parent
# Run as a script: the workshop package sits beside bench/.
sys.path.insert(0, str(ROOT))

from workshop import processes  # noqa: E402
from workshop.ports import free_port  # noqa: E402
from workshop.steps import finished  # noqa: E402

# --- the servers' processes, through psutil (Linux and macOS alike) -------------------------


def rss_bytes(pid):
    """Resident memory of the server and every process it started (a server may fork)."""
    total = 0
    for member in processes.with_descendants(pid):
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


def cpu_seconds(pid):
    total = 0.0
    for member in processes.with_descendants(pid):
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def machine_busy():
    """(busy, total) CPU seconds of the whole machine so far."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    return total - idle, total


class WindowSampler(threading.Thread):
    """During [start, end) (monotonic ns): the server's CPU seconds, and how busy the machine was."""

    def __init__(self, server, start_ns, end_ns):
        super().__init__(daemon=True)
        self.server, self.start_ns, self.end_ns = server, start_ns, end_ns
        self.server_cpu = 0.0
        self.machine_busy_pct = 0.0

    def run(self):
        time.sleep(max(self.start_ns - time.monotonic_ns(), 0) / 1e9)
        cpu_before, (busy_before, total_before) = (
            cpu_seconds(self.server.process.pid),
            machine_busy(),
        )
        time.sleep(max(self.end_ns - time.monotonic_ns(), 0) / 1e9)
        self.server_cpu = cpu_seconds(self.server.process.pid) - cpu_before
        busy, total = machine_busy()
        self.machine_busy_pct = (
            100 * (busy - busy_before) / max(total - total_before, 1e-9)
        )


def pipe(stream: IO[str] | None) -> IO[str]:
    """A pipe this runner opened to a process it started (so never None)."""
    assert stream is not None
    return stream


# --- the processes -----------------------------------------------------------------------------------


class Server:
    """A chat server in a subprocess on a free loopback port."""

    def __init__(self, label, command):
        self.label = label
        self.port = free_port()
        self.process = subprocess.Popen(
            [part.replace("{port}", str(self.port)) for part in command],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.users()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"{label} did not start: {pipe(self.process.stderr).read()[-2000:]}"
                    )
                time.sleep(0.05)

    def users(self):
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/users", timeout=10
        ) as response:
            return json.load(response)

    def stop(self):
        processes.stop(self.process)


class LoadGenerators:
    """Several bench/loadgen.py processes, driven in lock step over pipes."""

    def __init__(self, count):
        self.processes = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "loadgen.py"), str(number)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for number in range(count)
        ]

    def ask(self, commands, timeout):
        """Send one command to each process and wait for every reply."""
        waiting = {}
        for process, command in zip(self.processes, commands, strict=True):
            pipe(process.stdin).write(json.dumps(command) + "\n")
            pipe(process.stdin).flush()
            waiting[pipe(process.stdout).fileno()] = process
        replies = {}
        deadline = time.monotonic() + timeout
        while waiting:
            ready, _, _ = select.select(
                list(waiting), [], [], max(deadline - time.monotonic(), 0)
            )
            if not ready:
                raise TimeoutError(
                    f"a load generator did not answer within {timeout:.0f} s"
                )
            for fd in ready:
                process = waiting.pop(fd)
                line = pipe(process.stdout).readline()
                if not line:
                    raise RuntimeError("a load generator exited")
                replies[self.processes.index(process)] = json.loads(line)
        return [replies[number] for number in range(len(self.processes))]

    def stop(self):
        for process in self.processes:
            with contextlib.suppress(OSError):
                # End of commands: it closes its connections and exits.
                pipe(process.stdin).close()
        for process in self.processes:
            processes.stop(process, interrupting=False)


# --- the phases --------------------------------------------------------------------------------------


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def probe(loadgens, probe_id, sender_worker, sender_index, timeout):
    """One message from one participant: (ms until the last participant got it, how many got it)."""
    commands = [
        {
            "cmd": "probe",
            "probe_id": probe_id,
            "sender": sender_index if number == sender_worker else None,
            "timeout": timeout,
        }
        for number in range(len(loadgens.processes))
    ]
    replies = loadgens.ask(commands, timeout + 10)
    sent_ns = replies[sender_worker]["sent_ns"]
    return (max(r["last_ns"] for r in replies) - sent_ns) / 1e6, sum(
        r["received"] for r in replies
    )


def measure(server, args):
    """Every phase against one server; returns its figures."""
    figures = {}
    workers = args.workers
    shares = [
        args.participants // workers + (number < args.participants % workers)
        for number in range(workers)
    ]
    rss_before = rss_bytes(server.process.pid)
    loadgens = LoadGenerators(workers)
    try:
        started = time.monotonic()
        replies = loadgens.ask(
            [
                {
                    "cmd": "connect",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "path": args.path,
                    "count": share,
                    "concurrency": 64,
                    "offer_compression": not args.plain_clients,
                }
                for share in shares
            ],
            timeout=120,
        )
        connected = [r["connected"] for r in replies]
        figures["connected"] = sum(connected)
        figures["connect_errors"] = sorted(
            {error for r in replies for error in r["errors"]}
        )
        # N joins make N*N/2 announcements; allow for a slow server (10,000 deliveries/s).
        join_storm = max(60.0, args.participants**2 / 2 / 10000)
        # A participant is in the room once its handler has registered it, a little after the handshake.
        deadline = time.monotonic() + join_storm
        while (
            server.users()["count"] < figures["connected"]
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        # The first probe queues behind every announcement: once everyone has it, the room is quiet.
        _, held = probe(loadgens, 0, 0, 0, timeout=join_storm)
        figures["join_seconds"] = time.monotonic() - started
        figures["held"] = held
        figures["users_count"] = server.users()["count"]
        figures["rss_per_participant_kib"] = (
            (rss_bytes(server.process.pid) - rss_before) / 1024 / max(held, 1)
        )

        times = []
        for probe_id in range(1, args.probes + 1):
            sender_worker = probe_id % workers
            elapsed, received = probe(
                loadgens,
                probe_id,
                sender_worker,
                random.randrange(connected[sender_worker]),
                10,
            )
            if received >= held:
                times.append(elapsed)
        figures["probes_complete"] = len(times)
        if times:
            figures["reach_all_p50_ms"] = statistics.median(times)
            figures["reach_all_p99_ms"] = percentile(times, 0.99)

        senders = [
            random.sample(range(count), min(count, args.senders // workers))
            for count in connected
        ]
        start_ns = time.monotonic_ns() + int(0.3e9)
        sampler = WindowSampler(
            server, start_ns, start_ns + int(args.flood_seconds * 1e9)
        )
        sampler.start()
        replies = loadgens.ask(
            [
                {
                    "cmd": "flood",
                    "senders": chosen,
                    "start_ns": start_ns,
                    "duration": args.flood_seconds,
                    "window": args.window,
                    "interval": 1 / args.sender_rate,
                }
                for chosen in senders
            ],
            timeout=args.flood_seconds + 30,
        )
        sampler.join()
        figures["server_cpu_pct"] = 100 * sampler.server_cpu / args.flood_seconds
        figures["machine_busy_pct"] = sampler.machine_busy_pct
        # Each load generator sampled its own sockets at about the same moments: add
        # them up (one may have taken a sample fewer).
        samples = [r["unread_bytes"] for r in replies]
        shortest = min(map(len, samples))
        unread = [sum(s[at] for s in samples) for at in range(shortest)]
        figures["unread_kib_mean"] = statistics.mean(unread) / 1024 if unread else 0.0
        figures["unread_kib_max"] = max(unread) / 1024 if unread else 0.0
        figures["deliveries_per_s"] = (
            sum(r["deliveries"] for r in replies) / args.flood_seconds
        )
        figures["messages_per_s"] = sum(r["sent"] for r in replies) / args.flood_seconds
        trips = [
            r["round_trip_ms_p50"]
            for r in replies
            if r["round_trip_ms_p50"] is not None
        ]
        figures["sender_round_trip_p50_ms"] = (
            statistics.median(trips) if trips else None
        )
        figures["loadgen_cpu_pct"] = [
            round(100 * r["cpu_seconds"] / args.flood_seconds) for r in replies
        ]
        figures["live_after_flood"] = sum(r["live"] for r in replies)
    finally:
        loadgens.stop()
    return figures


# --- the report --------------------------------------------------------------------------------------

ROWS = [  # key, label
    ("held", "participants held"),
    ("reach_all_p50_ms", "time to reach all, p50 (ms)"),
    ("reach_all_p99_ms", "time to reach all, p99 (ms)"),
    ("deliveries_per_s", "deliveries/s"),
    ("rss_per_participant_kib", "memory per participant (KiB)"),
]


def machine():
    memory = psutil.virtual_memory().total / 1024**3
    processor = platform.processor() or platform.machine() or "unknown CPU"
    return (
        f"{psutil.cpu_count()} CPUs ({processor}), {memory:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.system()}"
    )


def print_report(results, args, load_before):
    labels = list(results)
    print(
        f"\n{args.participants} participants over loopback; {args.workers} load-generator processes; "
        f"{machine()}; load average {load_before} before the run\n"
    )
    header = (
        f"{'':30}"
        + "".join(f"{label:>14}" for label in labels)
        + (f"{'ratio':>10}" if len(labels) == 2 else "")
    )
    print(header)
    for key, label in ROWS:
        values = [results[name].get(key) for name in labels]
        line = f"{label:30}" + "".join(
            f"{value:>14,.1f}" if isinstance(value, float) else f"{value!s:>14}"
            for value in values
        )
        if len(labels) == 2 and all(isinstance(v, (int, float)) and v for v in values):
            line += f"{values[0] / values[1]:>9.2f}x"
        print(line)
    print()
    for name in labels:
        figures = results[name]
        print(
            f"{name}: {figures['connected']} connected and the join storm over in {figures['join_seconds']:.1f} s; "
            f"GET /users counted {figures['users_count']}; {figures['probes_complete']} of {args.probes} probes "
            f"reached everyone; {figures['live_after_flood']} still connected after the chat phase."
        )
        print(
            f"   chat phase: {figures['messages_per_s']:,.0f} messages/s broadcast, a sender's own message back in "
            f"{figures['sender_round_trip_p50_ms'] or 0:,.0f} ms (p50); server CPU {figures['server_cpu_pct']:.0f}% "
            f"(the whole machine: {figures['machine_busy_pct']:.0f}% of its {os.cpu_count()} CPUs busy); "
            f"load generators CPU {figures['loadgen_cpu_pct']}%; bytes unread in the participants' sockets: "
            f"mean {figures['unread_kib_mean']:,.1f} KiB, max {figures['unread_kib_max']:,.1f} KiB in all."
        )
        if figures["connect_errors"]:
            print(f"   connection errors: {figures['connect_errors']}")


def history_servers(history_file):
    """The room chat without and with chapter history (docs/history.md#what-it-costs)."""
    room = [sys.executable, "solutions/room/app.py", "--port", "{port}", "--no-logs"]
    history = [
        sys.executable,
        "solutions/history/app.py",
        "--port",
        "{port}",
        "--no-logs",
    ]
    # env sets the history file and execs the server: the bench watches the same pid.
    return {
        "no history": room,
        "history": ["env", f"CHAT_HISTORY={history_file}", *history],
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument(
        "--workers", type=int, default=4, help="load-generator processes (default 4)"
    )
    parser.add_argument(
        "--probes",
        type=int,
        default=200,
        help="messages timed one at a time (default 200)",
    )
    parser.add_argument(
        "--flood-seconds",
        type=float,
        default=5.0,
        help="length of the chat phase (default 5)",
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=200,
        help="participants chatting in that phase (default 200)",
    )
    parser.add_argument(
        "--sender-rate",
        type=float,
        default=4.0,
        help="messages/s per sender, under the app's limit of 5 (default 4)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=2,
        help="messages in flight per sender (default 2)",
    )
    parser.add_argument(
        "--plain-clients",
        action="store_true",
        help="clients that do not offer permessage-deflate (browsers do; see docs/performance.md)",
    )
    parser.add_argument(
        "--app",
        default=f"solutions/{finished().folder}",
        help="folder of the finished app",
    )
    parser.add_argument("--path", default="/ws/chat")
    parser.add_argument(
        "--server",
        action="append",
        metavar="LABEL=COMMAND",
        help="measure this server instead ({python} and {port} are filled in); repeatable",
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="measure the room chat without (solutions/room) and with (solutions/history) "
        "the chapter history, on a fresh file, instead of against the reference server",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--time-limit",
        type=int,
        default=900,
        help="seconds before giving up (default 900)",
    )
    args = parser.parse_args()
    if not hasattr(signal, "SIGALRM"):
        parser.error(
            "the bench runs on Linux and macOS (it needs SIGALRM and select on pipes)"
        )

    def out_of_time(signum, frame):
        raise TimeoutError(f"the bench was still running after {args.time_limit} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.time_limit)
    # So that `finally` stops what we started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))

    scratch = tempfile.TemporaryDirectory(prefix="bench-history-")
    if args.history:
        servers = history_servers(Path(scratch.name) / "chat-history.db")
    elif args.server:
        servers = {
            label: command.replace("{python}", sys.executable).split()
            for label, command in (spec.split("=", 1) for spec in args.server)
        }
    else:
        servers = {
            "cello": [
                sys.executable,
                f"{args.app}/app.py",
                "--port",
                "{port}",
                "--no-logs",
            ],
            "reference": [
                sys.executable,
                "bench/reference_server.py",
                "--port",
                "{port}",
            ],
        }
    load_before = " ".join(f"{load:.2f}" for load in psutil.getloadavg())
    results = {}
    for label, command in servers.items():
        print(f"measuring {label} ...", flush=True)
        server = Server(label, command)
        try:
            results[label] = measure(server, args)
        finally:
            server.stop()
    scratch.cleanup()
    print_report(results, args, load_before)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "load_before": load_before,
                    "args": vars(args) | {"json": str(args.json)},
                    "results": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
