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
Loopback only. Every process started here is stopped here; --time-limit bounds the whole run.

    python bench/run.py                          # 1,000 participants, both servers
    python bench/run.py --participants 2000
    python bench/run.py --server "tutorial={python} some/app.py --port {port}"   # measure another server
"""

import argparse
import json
import os
import platform
import random
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script: the workshop package sits beside bench/.
sys.path.insert(0, str(ROOT))

from workshop.steps import finished  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- what /proc says about the server and its sockets ------------------------------------------------


def process_tree(pid):
    """pid and all its descendants (a server may fork workers)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_bytes(pid):
    total = 0
    for member in process_tree(pid):
        try:
            total += (
                int((Path("/proc") / str(member) / "statm").read_text().split()[1])
                * PAGE
            )
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = (
                (Path("/proc") / str(member) / "stat")
                .read_text()
                .rsplit(")", 1)[1]
                .split()
            )
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def machine_busy():
    """(busy, total) CPU time of the whole machine so far, in clock ticks (/proc/stat)."""
    ticks = [
        int(value)
        for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def unread_bytes(server_port):
    """Bytes that reached the participants' sockets but were not read yet, summed over all of them."""
    total = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if (
                int(fields[2].rsplit(":", 1)[1], 16) == server_port
            ):  # the client end of a bench connection
                total += int(fields[4].split(":")[1], 16)
    return total


class WindowSampler(threading.Thread):
    """During [start, end) (monotonic ns): the server's CPU seconds, and unread_bytes() five times a second."""

    def __init__(self, server, start_ns, end_ns):
        super().__init__(daemon=True)
        self.server, self.start_ns, self.end_ns = server, start_ns, end_ns
        self.unread = []
        self.server_cpu = 0.0
        self.machine_busy_pct = 0.0

    def run(self):
        time.sleep(max(self.start_ns - time.monotonic_ns(), 0) / 1e9)
        cpu_before, (busy_before, total_before) = (
            cpu_seconds(self.server.process.pid),
            machine_busy(),
        )
        while time.monotonic_ns() < self.end_ns:
            time.sleep(min(0.2, max(self.end_ns - time.monotonic_ns(), 0) / 1e9))
            self.unread.append(unread_bytes(self.server.port))
        self.server_cpu = cpu_seconds(self.server.process.pid) - cpu_before
        busy, total = machine_busy()
        self.machine_busy_pct = (
            100 * (busy - busy_before) / max(total - total_before, 1)
        )


# --- the processes -----------------------------------------------------------------------------------


class TooSlow(TimeoutError):
    """The server under test was too slow for a phase: the bench reports it and goes on."""


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
                        f"{label} did not start: {self.process.stderr.read()[-2000:]}"
                    )
                time.sleep(0.05)

    def users(self):
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/users", timeout=10
            ) as response:
                return json.load(response)
        except (TimeoutError, urllib.error.URLError) as error:
            if not isinstance(error, TimeoutError) and not isinstance(
                error.reason, TimeoutError
            ):
                raise  # refused: not started yet, or stopped
            raise TooSlow("GET /users got no answer within 10 s") from None

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


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
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
            waiting[process.stdout.fileno()] = process
        replies = {}
        deadline = time.monotonic() + timeout
        while waiting:
            ready, _, _ = select.select(
                list(waiting), [], [], max(deadline - time.monotonic(), 0)
            )
            if not ready:
                raise TooSlow(f"a load generator did not answer within {timeout:.0f} s")
            for fd in ready:
                process = waiting.pop(fd)
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError("a load generator exited")
                replies[self.processes.index(process)] = json.loads(line)
        return [replies[number] for number in range(len(self.processes))]

    def stop(self):
        for process in self.processes:
            try:
                process.stdin.close()  # end of commands: it closes its connections and exits
            except OSError:
                pass
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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
            # Joining is part of the join storm: a slow server at 2,000 takes minutes.
            timeout=max(120.0, args.participants**2 / 2 / 10000),
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
        while time.monotonic() < deadline:
            try:
                if server.users()["count"] >= figures["connected"]:
                    break
            except TooSlow:
                pass  # busy announcing the joins: ask again until the deadline
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
        figures["unread_kib_mean"] = (
            statistics.mean(sampler.unread) / 1024 if sampler.unread else 0.0
        )
        figures["unread_kib_max"] = (
            max(sampler.unread) / 1024 if sampler.unread else 0.0
        )
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
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} CPUs ({model}), {memory:.0f} GiB, Python {platform.python_version()}, {platform.system()}"


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
            f"{value:>14,.1f}"
            if isinstance(value, float)
            else f"{'-' if value is None else value!s:>14}"
            for value in values
        )
        if len(labels) == 2 and all(isinstance(v, (int, float)) and v for v in values):
            line += f"{values[0] / values[1]:>9.2f}x"
        print(line)
    print()
    for name in labels:
        figures = results[name]
        if "failed" in figures:
            print(f"{name}: not measured to the end: {figures['failed']}.")
            continue
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
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--time-limit",
        type=int,
        default=900,
        help="seconds before giving up (default 900)",
    )
    args = parser.parse_args()
    if not Path("/proc/net/tcp").exists():
        parser.error(
            "the bench reads the servers' memory, CPU and sockets from /proc: it runs on Linux only"
        )

    def out_of_time(signum, frame):
        raise TimeoutError(f"the bench was still running after {args.time_limit} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.time_limit)
    # So that `finally` stops what we started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))

    if args.server:
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
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = {}
    for label, command in servers.items():
        print(f"measuring {label} ...", flush=True)
        server = Server(label, command)
        try:
            results[label] = measure(server, args)
        except TooSlow as error:
            results[label] = {"failed": str(error)}
        finally:
            server.stop()
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
