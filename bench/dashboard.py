"""How many learners the instructor's dashboard holds, and how soon a check result shows on it.

    python bench/dashboard.py                        # 300 learners (a large room)
    python bench/dashboard.py --learners 998         # the dashboard's limit (1,000, probes included)

Starts a real cockpit (`python -m workshop dashboard`, loopback only) and the dashboard page in a
headless Chromium, then N simulated learners: each reports steps 1-3 once, then keeps reporting
its current step at random, every --every seconds on average (a room running make watch), for
--seconds. Meanwhile a probe learner reports a new result --probes times, one at a time, and the
time is measured from the start of its send (share.send, the learners' own client) to the
moment the dashboard's page shows it. It prints:
  - learners held: rows the page shows / learners who reported (and reports refused);
  - report round trip for a learner (p50, p99): what a check run waits for;
  - check result to the dashboard's page (p50, p99, max);
  - the size of one dashboard update, and the reports handled per second.
Loopback only; every process started here is stopped here.
"""

import argparse
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from workshop import share  # noqa: E402
from workshop.browser import CHROMIUM_FLAGS, find_chromium  # noqa: E402
from workshop.cockpit.board import checks_of  # noqa: E402
from workshop.ports import free_port  # noqa: E402
from workshop.steps import step  # noqa: E402

KEYS = ["1", "2", "3", "4", "5", "6", "7"]


def outcomes(key: str, failing: int) -> dict:
    checks = checks_of(step(key))
    return {
        check.name: "failed" if number < failing else "passed"
        for number, check in enumerate(checks)
    }


def percentile(values: list[float], share_: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share_ * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=300)
    parser.add_argument(
        "--every", type=float, default=20, help="seconds between a learner's reports"
    )
    parser.add_argument(
        "--seconds", type=float, default=30, help="how long the room works"
    )
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()

    port = free_port()
    cockpit = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workshop",
            "dashboard",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--chat",
            f"http://127.0.0.1:{free_port()}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    assert cockpit.stdout is not None
    try:
        for line in cockpit.stdout:
            if "Nothing is saved" in line:
                break
        threading.Thread(
            target=lambda: [None for _ in cockpit.stdout or ()], daemon=True
        ).start()
        return run(args, base, port)
    finally:
        cockpit.send_signal(signal.SIGINT)
        try:
            cockpit.wait(10)
        except subprocess.TimeoutExpired:
            cockpit.kill()
            cockpit.wait()


def probe_latencies(
    page, port: int, name: str, probes: int, pause: float
) -> list[float]:
    """Seconds from the start of a learner's send to the page showing the new result."""
    probe = {
        "host": "127.0.0.1",
        "port": port,
        "name": name,
        "seat": secrets.token_hex(8),
    }
    key, latencies = KEYS[3], []
    for number in range(probes):
        failing = number % 3  # a result the page does not show yet: 4/4, 3/4, 2/4, ...
        checks = outcomes(key, failing)
        want = sum(1 for o in checks.values() if o == "passed")
        before = time.perf_counter()
        line = share.send(
            [{"step": key, "checks": checks, "complete": True}], probe, timeout=5
        )
        page.wait_for_function(
            """([seat, shown]) => {
                const cell = document.querySelector(`tr[data-seat="${seat}"] td[data-step="4"]`);
                return cell !== null && cell.textContent === shown;
            }""",
            arg=[probe["seat"], f"{want}/{len(checks)}" if failing else "\u2713"],
            timeout=30_000,
            polling="raf",
        )
        latencies.append(time.perf_counter() - before)
        assert line.startswith("Shared"), line
        time.sleep(pause)
    return latencies


def run(args, base: str, port: int) -> int:
    learners = [
        {
            "host": "127.0.0.1",
            "port": port,
            "name": f"Learner {n:04d}",
            "seat": secrets.token_hex(8),
        }
        for n in range(args.learners)
    ]
    round_trips: list[float] = []
    refused = [0]
    lock = threading.Lock()

    def report(setting: dict, steps: list[dict]) -> None:
        payload = {"seat": setting["seat"], "name": setting["name"], "steps": steps}
        started = time.perf_counter()
        try:
            share.post(setting, "/api/report", payload, 5)
        except (urllib.error.HTTPError, OSError):
            with lock:
                refused[0] += 1
            return
        with lock:
            round_trips.append(time.perf_counter() - started)

    def entry(key: str, failing: int) -> dict:
        return {"step": key, "checks": outcomes(key, failing), "complete": True}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_FLAGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(f"{base}/dashboard")
        # The same probes on an empty dashboard first: the ratio is what N learners cost.
        alone = probe_latencies(page, port, "Alone", args.probes, 0.05)

        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(lambda s: report(s, [entry(k, 0) for k in KEYS[:3]]), learners)
            )
        page.wait_for_function(
            "n => document.querySelectorAll('#grid tbody tr').length >= n",
            arg=args.learners + 1,
            timeout=60_000,
        )

        stop = threading.Event()
        sent = [0]

        def room():
            with ThreadPoolExecutor(8) as pool:
                while not stop.is_set():
                    key = random.choice(KEYS[3:])
                    pool.submit(
                        report,
                        random.choice(learners),
                        [entry(key, random.randint(0, 2))],
                    )
                    sent[0] += 1
                    stop.wait(args.every / args.learners)

        working = threading.Thread(target=room, daemon=True)
        started_room = time.monotonic()
        working.start()
        latencies = probe_latencies(
            page, port, "Probe", args.probes, args.seconds / args.probes
        )
        stop.set()
        working.join()
        seconds = time.monotonic() - started_room
        rows = page.locator("#grid tbody tr").count()
        browser.close()

    with urllib.request.urlopen(f"{base}/api/board", timeout=10) as answer:
        update_bytes = len(answer.read())
    expected = args.learners + 2  # and the two probes

    ms = sorted(1000 * x for x in latencies)
    ms_alone = sorted(1000 * x for x in alone)
    trips = [1000 * x for x in round_trips]
    print(
        f"learners held                          {rows - 2} of {args.learners} shown, {refused[0]} reports refused"
    )
    print(
        f"reports while the room worked          {sent[0]} in {seconds:.0f} s ({sent[0] / seconds:.1f}/s)"
    )
    print(
        f"report round trip, p50 / p99           {statistics.median(trips):.1f} / {percentile(trips, 0.99):.1f} ms"
    )
    print(
        f"check result to the dashboard's page   p50 {statistics.median(ms):.0f} ms, p99 {percentile(ms, 0.99):.0f} ms, max {max(ms):.0f} ms ({len(ms)} probes)"
    )
    print(
        f"  the same on an empty dashboard       p50 {statistics.median(ms_alone):.0f} ms, max {max(ms_alone):.0f} ms (ratio of the p50s: {statistics.median(ms) / statistics.median(ms_alone):.1f}x)"
    )
    print(
        f"load average (1 min) of this machine   {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"one dashboard update                   {update_bytes / 1024:.0f} KiB of JSON"
    )
    return 0 if rows == expected and not refused[0] else 1


if __name__ == "__main__":
    sys.exit(main())
