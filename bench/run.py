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
    python bench/run.py --processes 2            # one room over Redis: 1 process, 1 + Redis, 2 + Redis
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
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

import psutil

ROOT = Path(__file__).resolve().parent.parent
# Run as a script: the workshop package sits beside bench/.
sys.path.insert(0, str(ROOT))

from workshop import processes  # noqa: E402
from workshop.ports import free_port, loopback_address  # noqa: E402
from workshop.redis_server import INSTALL, RedisServer, find_redis_server  # noqa: E402
from workshop.steps import finished, step  # noqa: E402

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
    """During [start, end) (monotonic ns): each server's CPU seconds, those of the other
    processes named (redis-server), and how busy the machine was."""

    def __init__(self, servers, start_ns, end_ns, others=()):
        super().__init__(daemon=True)
        self.servers, self.start_ns, self.end_ns = servers, start_ns, end_ns
        self.others = list(others)  # pids
        self.server_cpu = [0.0] * len(servers)
        self.others_cpu = [0.0] * len(self.others)
        self.machine_busy_pct = 0.0

    def cpu(self):
        servers = [cpu_seconds(server.process.pid) for server in self.servers]
        return servers, [cpu_seconds(pid) for pid in self.others]

    def run(self):
        time.sleep(max(self.start_ns - time.monotonic_ns(), 0) / 1e9)
        (servers_before, others_before), (busy_before, total_before) = (
            self.cpu(),
            machine_busy(),
        )
        time.sleep(max(self.end_ns - time.monotonic_ns(), 0) / 1e9)
        servers_after, others_after = self.cpu()
        self.server_cpu = [
            b - a for a, b in zip(servers_before, servers_after, strict=True)
        ]
        self.others_cpu = [
            b - a for a, b in zip(others_before, others_after, strict=True)
        ]
        busy, total = machine_busy()
        self.machine_busy_pct = (
            100 * (busy - busy_before) / max(total - total_before, 1e-9)
        )


def pipe(stream: IO[str] | None) -> IO[str]:
    """A pipe this runner opened to a process it started (so never None)."""
    assert stream is not None
    return stream


# --- the processes -----------------------------------------------------------------------------------


class TooSlow(TimeoutError):
    """The server under test was too slow for a phase: the bench reports it and goes on."""


class Server:
    """A chat server in a subprocess on a free port of `host` (127.0.0.2 plays another
    machine); `env` is added to the environment."""

    def __init__(self, label, command, host="127.0.0.1", env=None):
        self.label = label
        self.host = host
        self.port = free_port(host)
        self.process = subprocess.Popen(
            [
                part.replace("{port}", str(self.port)).replace("{host}", host)
                for part in command
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
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
        try:
            with urllib.request.urlopen(
                f"http://{self.host}:{self.port}/users", timeout=10
            ) as response:
                return json.load(response)
        except (TimeoutError, urllib.error.URLError) as error:
            if not isinstance(error, TimeoutError) and not isinstance(
                error.reason, TimeoutError
            ):
                raise  # refused: not started yet, or stopped
            raise TooSlow("GET /users got no answer within 10 s") from None

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
                raise TooSlow(f"a load generator did not answer within {timeout:.0f} s")
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
    """One message from one participant: (ms until the last participant got it, how many
    got it, ms until each load generator's first participant got it, or None)."""
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
    return (
        (max(r["last_ns"] for r in replies) - sent_ns) / 1e6,
        sum(r["received"] for r in replies),
        [(r["first_ns"] - sent_ns) / 1e6 if r["received"] else None for r in replies],
    )


def measure(servers, args, others=()):
    """Every phase against one server, or several serving one room (load generator i
    joins servers[i % len(servers)]); returns the figures. `others`: more pids whose CPU
    counts (redis-server)."""
    figures = {}
    workers = args.workers
    server = servers[0]  # its GET /users counts the whole room
    serving = [servers[number % len(servers)] for number in range(workers)]
    shares = [
        args.participants // workers + (number < args.participants % workers)
        for number in range(workers)
    ]
    rss_before = sum(rss_bytes(each.process.pid) for each in servers)
    loadgens = LoadGenerators(workers)
    try:
        started = time.monotonic()
        replies = loadgens.ask(
            [
                {
                    "cmd": "connect",
                    "host": target.host,
                    "port": target.port,
                    "path": args.path,
                    "count": share,
                    "concurrency": 64,
                    "offer_compression": not args.plain_clients,
                }
                for share, target in zip(shares, serving, strict=True)
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
        _, held, _ = probe(loadgens, 0, 0, 0, timeout=join_storm)
        figures["join_seconds"] = time.monotonic() - started
        figures["held"] = held
        figures["users_count"] = server.users()["count"]
        rss_after = sum(rss_bytes(each.process.pid) for each in servers)
        figures["rss_per_participant_kib"] = (
            (rss_after - rss_before) / 1024 / max(held, 1)
        )

        times, first_here, first_there = [], [], []
        for probe_id in range(1, args.probes + 1):
            sender_worker = probe_id % workers
            elapsed, received, firsts = probe(
                loadgens,
                probe_id,
                sender_worker,
                random.randrange(connected[sender_worker]),
                10,
            )
            if received >= held:
                times.append(elapsed)
            # The first to have it on the sender's own process, and on another one.
            home = serving[sender_worker]
            here = [
                f
                for f, at in zip(firsts, serving, strict=True)
                if at is home and f is not None
            ]
            there = [
                f
                for f, at in zip(firsts, serving, strict=True)
                if at is not home and f is not None
            ]
            first_here += [min(here)] if here else []
            first_there += [min(there)] if there else []
        figures["probes_complete"] = len(times)
        if times:
            figures["reach_all_p50_ms"] = statistics.median(times)
            figures["reach_all_p99_ms"] = percentile(times, 0.99)
        for key, values in (("first_here", first_here), ("first_there", first_there)):
            if values:
                figures[f"{key}_p50_ms"] = statistics.median(values)
                figures[f"{key}_p99_ms"] = percentile(values, 0.99)

        senders = [
            random.sample(range(count), min(count, args.senders // workers))
            for count in connected
        ]
        start_ns = time.monotonic_ns() + int(0.3e9)
        sampler = WindowSampler(
            servers, start_ns, start_ns + int(args.flood_seconds * 1e9), others
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
        figures["server_cpu_pct"] = 100 * sum(sampler.server_cpu) / args.flood_seconds
        figures["process_cpu_pct"] = [
            100 * seconds / args.flood_seconds for seconds in sampler.server_cpu
        ]
        figures["others_cpu_pct"] = [
            100 * seconds / args.flood_seconds for seconds in sampler.others_cpu
        ]
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


# --- one room over several processes (docs/scale.md#measured) --------------------------------------


def measure_processes(args):
    """The same load on: the finished room in 1 process, without Redis; the scale
    chapter's chat in 1 process with Redis; and in N processes with Redis, each on a
    loopback address of its own, the load generators split between them. Each
    configuration gets a fresh redis-server. On a shared machine the others' load comes
    and goes: the configurations take turns, --rounds times, and each figure is the
    median of its rounds."""
    room, scale = Path(args.app), step("scale").solution_dir
    hosts = [
        loopback_address(f"127.0.0.{2 + number}") for number in range(args.processes)
    ]
    configurations = [
        ("1 process", room, hosts[:1], False),
        ("1 process + Redis", scale, hosts[:1], True),
        (f"{args.processes} processes + Redis", scale, hosts, True),
    ]
    rounds: dict[str, list] = {label: [] for label, *_ in configurations}
    for number, (label, app, on, with_redis) in enumerate(configurations * args.rounds):
        round_number = number // len(configurations) + 1
        print(
            f"measuring {label} (round {round_number} of {args.rounds}) ...", flush=True
        )
        redis_server = RedisServer().start() if with_redis else None
        env = {"REDIS_URL": redis_server.url} if redis_server else {}
        command = [sys.executable, str(app / "app.py"), "--host", "{host}"]
        command += ["--port", "{port}", "--no-logs"]
        servers = []
        try:
            for host in on:
                servers.append(Server(f"{label} on {host}", command, host, env))
            others = (
                [redis_server.process.pid]
                if redis_server and redis_server.process
                else []
            )
            rounds[label].append(measure(servers, args, others))
        finally:
            for server in servers:
                server.stop()
            if redis_server:
                redis_server.stop()
    return {label: median_figures(runs) for label, runs in rounds.items()}


def middle(values):
    """The median; of counts, one of the counts (no half participants)."""
    if all(isinstance(value, int) for value in values):
        return statistics.median_low(values)
    return statistics.median(values)


def median_figures(runs):
    """Each figure's median over the rounds (element by element for lists); the rounds
    are kept too."""
    figures = {"rounds": runs}

    def numbers(value):
        items = value if isinstance(value, list) else [value]
        return all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in items
        )

    for key, value in runs[0].items():
        values = [run.get(key) for run in runs]
        if all(isinstance(v, list) for v in values) and not all(map(numbers, values)):
            figures[key] = sorted({item for v in values for item in v})  # errors seen
        elif not all(numbers(v) for v in values):
            figures[key] = value
        elif isinstance(value, list):
            figures[key] = [middle(column) for column in zip(*values, strict=True)]
        else:
            figures[key] = middle(values)
    return figures


def others_cpu(figures):
    """CPU the machine spent on programs other than this bench's during the chat phase,
    in % of one CPU."""
    ours = sum(figures["process_cpu_pct"]) + sum(figures["others_cpu_pct"])
    ours += sum(figures["loadgen_cpu_pct"])
    return max(figures["machine_busy_pct"] * (os.cpu_count() or 1) - ours, 0.0)


def print_processes_report(results, args, load_before):
    labels = list(results)
    print(
        f"\n{args.participants} participants over loopback, one room; {args.workers} load-generator "
        f"processes; {machine()}; load average {load_before} before the run; each figure is the median "
        f"of {args.rounds} rounds, the configurations taking turns\n"
    )

    def cell(value, digits=1):
        if value is None:
            return "-"
        if isinstance(value, list):
            return " + ".join(f"{v:.0f}" for v in value) or "-"
        return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value}"

    rows = [
        ("participants held", lambda f: f["held"]),
        ("GET /users counted", lambda f: f["users_count"]),
        ("time to reach all, p50 (ms)", lambda f: f.get("reach_all_p50_ms")),
        ("time to reach all, p99 (ms)", lambda f: f.get("reach_all_p99_ms")),
        ("deliveries/s", lambda f: f["deliveries_per_s"]),
        (
            "first on the sender's process, p50 (ms)",
            lambda f: f.get("first_here_p50_ms"),
        ),
        (
            "first on the sender's process, p99 (ms)",
            lambda f: f.get("first_here_p99_ms"),
        ),
        ("first on another process, p50 (ms)", lambda f: f.get("first_there_p50_ms")),
        ("first on another process, p99 (ms)", lambda f: f.get("first_there_p99_ms")),
        ("memory per participant (KiB)", lambda f: f["rss_per_participant_kib"]),
        ("CPU per app process (% of one CPU)", lambda f: f["process_cpu_pct"]),
        ("redis-server CPU (%)", lambda f: f["others_cpu_pct"] or None),
        ("load generators CPU (%)", lambda f: f["loadgen_cpu_pct"]),
        (
            "app CPU per delivery (us)",
            lambda f: f["server_cpu_pct"] * 1e4 / max(f["deliveries_per_s"], 1),
        ),
        ("whole machine busy (%)", lambda f: f["machine_busy_pct"]),
        ("other programs' CPU (% of one CPU)", others_cpu),
    ]
    width = max(22, *(len(label) + 2 for label in labels))
    print(f"{'':42}" + "".join(f"{label:>{width}}" for label in labels))
    for title, pick in rows:
        print(
            f"{title:42}"
            + "".join(f"{cell(pick(results[label])):>{width}}" for label in labels)
        )
    base = results[labels[0]]["deliveries_per_s"] or 1
    print(
        "\ndeliveries/s against 1 process: "
        + ", ".join(
            f"{label} {results[label]['deliveries_per_s'] / base:.2f}x"
            for label in labels
        )
    )
    for label in labels:
        figures = results[label]
        runs = figures["rounds"]
        print(
            f"{label}, round by round: deliveries/s "
            + " / ".join(f"{run['deliveries_per_s']:,.0f}" for run in runs)
            + "; p99 to all (ms) "
            + " / ".join(f"{run.get('reach_all_p99_ms', 0):.1f}" for run in runs)
            + "; other programs' CPU (%) "
            + " / ".join(f"{others_cpu(run):.0f}" for run in runs)
        )
        print(
            f"   {figures['connected']} connected, the join storm over in {figures['join_seconds']:.1f} s; "
            f"{figures['probes_complete']} of {args.probes} probes reached everyone; "
            f"{figures['live_after_flood']} still connected after the chat phase."
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
    parser.add_argument(
        "--history",
        action="store_true",
        help="measure the room chat without (solutions/room) and with (solutions/history) "
        "the chapter history, on a fresh file, instead of against the reference server",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        metavar="N",
        help="one room over Redis instead (docs/scale.md#measured): the finished room in "
        "1 process, the scale chapter's in 1 process with Redis, and in N processes "
        "(127.0.0.2, .3, ...) with Redis",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="R",
        help="with --processes: the configurations take turns R times and each figure "
        "is the median (default 3)",
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
    check_choices(parser, args)

    def out_of_time(signum, frame):
        raise TimeoutError(f"the bench was still running after {args.time_limit} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.time_limit)
    # So that `finally` stops what we started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))

    load_before = " ".join(f"{load:.2f}" for load in psutil.getloadavg())
    if args.processes:
        results = measure_processes(args)
        print_processes_report(results, args, load_before)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-history-") as scratch:
            results = measure_servers(args, Path(scratch))
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


def check_choices(parser, args):
    """What cannot be measured as asked gets a clear error before anything starts."""
    for name in ("participants", "workers", "probes", "senders", "window"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    for spec in args.server or []:
        if "=" not in spec or not spec.split("=", 1)[1].strip():
            parser.error(f"--server {spec!r}: write LABEL=COMMAND")
    if args.history and args.server:
        parser.error("--history and --server are two different runs: choose one")
    if args.processes == 0:
        if args.rounds is not None:
            parser.error("--rounds goes with --processes N")
        return
    if args.history or args.server:
        given = "--history" if args.history else "--server"
        parser.error(f"--processes and {given} are two different runs: choose one")
    if args.processes < 2:
        parser.error(
            "--processes N compares 1 process with N over Redis: N must be 2 or more"
        )
    if args.processes > args.workers:
        parser.error(
            f"--processes {args.processes} needs at least as many load generators: "
            f"--workers {args.processes} or more"
        )
    args.rounds = 3 if args.rounds is None else args.rounds
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if find_redis_server() is None:
        parser.error(INSTALL)


def measure_servers(args, scratch):
    """The finished chat and the reference server, the --history pair, or --server's."""
    if args.history:
        servers = history_servers(scratch / "chat-history.db")
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
    results = {}
    for label, command in servers.items():
        print(f"measuring {label} ...", flush=True)
        server = Server(label, command)
        try:
            results[label] = measure([server], args)
        except TooSlow as error:
            results[label] = {"failed": str(error)}
        finally:
            server.stop()
    return results


if __name__ == "__main__":
    main()
