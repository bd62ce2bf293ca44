"""The instructor's tools: make demo (the chat for a room), make bots (simulated participants), make bench."""

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from websockets.sync.client import connect

from workshop.harness import start_server
from workshop.ports import free_port, port_is_free
from workshop.redis_server import INSTALL, find_redis_server, unavailable
from workshop.steps import ROOT, finished

_printed: dict[int, queue.Queue] = {}


def read_until(process, pattern: str, timeout: float = 20) -> list[str]:
    """Lines the process prints, up to and including the first that matches `pattern`."""
    if (
        process.pid not in _printed
    ):  # a thread reads the pipe: select() cannot see lines Python has buffered
        lines = _printed[process.pid] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(line) for line in process.stdout], daemon=True
        ).start()
    seen, deadline = [], time.monotonic() + timeout
    while True:
        try:
            seen.append(
                _printed[process.pid].get(
                    timeout=max(deadline - time.monotonic(), 0.001)
                )
            )
        except queue.Empty:
            raise AssertionError(
                f"waited {timeout} s for a line matching {pattern!r}; got:\n"
                + "".join(seen)
            ) from None
        if re.search(pattern, seen[-1]):
            return seen


def test_make_demo_prints_the_addresses_and_the_participant_count(background):
    port = free_port()
    # The projector's cockpit on a free port too, never a real session's 8002.
    demo = background(
        ["make", "--no-print-directory", "demo", f"PORT={port}"],
        env={"COCKPIT_PORT": str(free_port())},
    )
    printed = read_until(demo.process, r"\b0 participants")
    served = finished()
    heading = f"Serving {served.label} ({served.title}) on port {port}. Ask the room to open:\n"
    addresses = printed[printed.index(heading) + 1 :]
    for line in addresses[
        : addresses.index(next(a for a in addresses if a.startswith("On this machine")))
    ]:
        assert (
            re.fullmatch(rf"    http://(?!127\.)\d+\.\d+\.\d+\.\d+:{port}\n", line)
            or "no network address" in line
        ), line
    assert f"On this machine: http://127.0.0.1:{port}" in "".join(printed)

    with (
        connect(f"ws://127.0.0.1:{port}/ws/chat"),
        connect(f"ws://127.0.0.1:{port}/ws/chat"),
    ):
        joined = read_until(demo.process, r"\b2 participants")
    assert "(+" in joined[-1], joined
    read_until(demo.process, r"\b0 participants \(-")

    exit_status, output = demo.interrupt()
    # What the reading thread got first.
    output += "".join(_printed[demo.process.pid].queue)
    assert exit_status in (0, -signal.SIGINT), (
        f"make demo ended with {exit_status}:\n{output}"
    )
    assert "Traceback" not in output, output
    assert port_is_free(port, "0.0.0.0"), (
        f"make demo left a server on port {port} after Ctrl-C"
    )


def test_make_demo_refuses_a_busy_port_and_names_who_holds_it():
    port = free_port()
    with (
        socket.socket() as holder
    ):  # a forgotten `make solution 7` on the same port, say
        holder.bind(("127.0.0.1", port))
        holder.listen()
        refused = subprocess.run(
            ["make", "--no-print-directory", "demo", f"PORT={port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert refused.returncode != 0
    assert f"Port {port}" in refused.stderr and re.search(
        r"PORT=\d+ make demo", refused.stderr
    ), refused.stderr
    assert "held by pid" in refused.stderr, refused.stderr


def listen(watcher, until) -> None:
    """Read the room, answering pings as the page does, until `until()` is true."""
    while not until():
        message = watcher.wait_for(lambda m: True, "the room's messages")
        if message.get("type") == "ping":
            watcher.send_json({"type": "pong"})


def test_bots_join_talk_answer_pings_and_leave_on_ctrl_c():
    # A short heartbeat: bots that did not answer pings would be taken out of the room within 1.5 s.
    with start_server(
        finished().solution_dir, env={"CHAT_HEARTBEAT_SECONDS": "0.5"}, direct=True
    ) as server:
        watcher = server.connect()
        bots = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workshop.bots",
                "--url",
                server.url,
                "--count",
                "4",
                "--pace",
                "0.3",
                "--arrival",
                "0.2",
                "--stay",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            read_until(bots, r"All 4 bots are in the room")

            def talkers():
                return {
                    m["username"]
                    for m in watcher.received
                    if isinstance(m, dict) and m.get("type") == "chat"
                }

            listen(watcher, lambda: len(talkers()) == 4)
            assert all(not name.startswith("User-") for name in talkers()), (
                f"the bots should pick names: {talkers()}"
            )
            # Two seconds of 0.2 s heartbeats: a bot that never answered would have been taken out by now.
            deadline = time.monotonic() + 2
            listen(watcher, lambda: time.monotonic() > deadline)
            departures = [
                m["message"]
                for m in watcher.received
                if "left the chat" in str(m.get("message", ""))
            ]
            assert not departures, (
                f"bots that answer every ping stay in the room, yet: {departures}"
            )
        finally:
            bots.send_signal(signal.SIGINT)
            output, _ = bots.communicate(timeout=10)
        assert bots.returncode == 0 and "Traceback" not in output, output
        listen(watcher, lambda: server.get_json("/users")["count"] == 1)


def test_make_bots_and_make_bench_take_n():
    bots = subprocess.run(
        ["make", "-n", "--no-print-directory", "bots", "N=12", "PORT=8123"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert "-m workshop bots --count 12 --url http://127.0.0.1:8123" in bots, bots
    bench = subprocess.run(
        ["make", "-n", "--no-print-directory", "bench", "N=2000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert "-m workshop bench --participants 2000" in bench, bench
    over_redis = subprocess.run(
        ["make", "-n", "--no-print-directory", "bench", "PROCESSES=2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert "bench --participants 1000 --processes 2" in over_redis, over_redis


def test_bench_measures_the_finished_chat_and_the_reference_side_by_side():
    finished = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--participants",
            "20",
            "--workers",
            "2",
            "--probes",
            "5",
            "--flood-seconds",
            "0.5",
            "--senders",
            "10",
            "--time-limit",
            "120",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    table = finished.stdout
    header = next(
        line for line in table.splitlines() if "cello" in line and "reference" in line
    )
    assert "ratio" in header, table
    held = next(
        line for line in table.splitlines() if line.startswith("participants held")
    )
    assert held.split()[2:5] == ["20", "20", "1.00x"], table
    for row in (
        "time to reach all, p50",
        "time to reach all, p99",
        "deliveries/s",
        "memory per participant",
    ):
        assert re.search(rf"^{re.escape(row)}.*\d.*\d.*x$", table, re.MULTILINE), (
            f"no figures for {row}:\n{table}"
        )
    assert "load generators CPU" in table and "bytes unread" in table, table


def test_bench_measures_one_room_in_one_and_two_processes_over_redis():
    if find_redis_server() is None:
        unavailable(INSTALL)
    finished = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            *("--participants", "20", "--workers", "2", "--probes", "6"),
            *("--flood-seconds", "0.5", "--senders", "10", "--time-limit", "120"),
            *("--processes", "2", "--rounds", "1"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    table = finished.stdout
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith(" ") and "Redis" in line)
    assert re.search(r"1 process +1 process \+ Redis +2 processes \+ Redis$", header), (
        table
    )
    for row, count in (("participants held", "20"), ("GET /users counted", "20")):
        line = next(line for line in lines if line.startswith(row))
        assert line.split()[-3:] == [count] * 3, table
    for row in ("time to reach all, p99", "deliveries/s"):
        assert re.search(rf"^{re.escape(row)}.*\d.*\d.*\d", table, re.MULTILINE), table
    # Only two processes have another process to cross to; each process's CPU is shown.
    other = next(
        line for line in lines if line.startswith("first on another process, p50")
    )
    assert other.split()[-3:-1] == ["-", "-"] and re.search(r"\d$", other), table
    cpu = next(line for line in lines if line.startswith("CPU per app process"))
    assert re.search(r"\d+ \+ \d+$", cpu), table
