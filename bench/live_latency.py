"""How late the chapter "live" board hears a join: solutions/live, pages following
GET /live/events, participants joining at random (docs/live.md#what-it-costs).

Cello 1.4.1 cannot hold a response open, so each page's request ends with its news and
EventSource asks again RETRY_MS later: an event that comes while a page is between two
requests waits for the next one. This measures what that costs, from the moment a
participant starts to join to the moment each page has the event, and checks that no
page missed an event or got one twice.

    python bench/live_latency.py                       # 50 pages, 200 joins, 10 a second
    python bench/live_latency.py --pages 200 --rate 20
    python bench/live_latency.py --chromium 12         # also: one board in Chromium

Every process it starts, it stops; loopback only.
"""

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(
    0, str(ROOT)
)  # run as a script: the workshop package sits beside bench/

from workshop.harness import RawParticipant, allow_open_sockets, start_server  # noqa: E402
from workshop.sse_client import EventSource  # noqa: E402

APP = ROOT / "solutions" / "live"


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(label, late_ms):
    return (
        f"{label}: p50 {percentile(late_ms, 0.5):.0f} ms, p90 {percentile(late_ms, 0.9):.0f}"
        f" ms, p99 {percentile(late_ms, 0.99):.0f} ms, max {max(late_ms):.0f} ms"
    )


def python_pages(server, args):
    """args.pages Python EventSources; args.joins joins, Poisson at args.rate a second."""
    pages = [EventSource(server, "/live/events") for _ in range(args.pages)]
    room = []
    try:
        deadline = time.monotonic() + 30
        while not all(page.snapshot() for page in pages):
            if time.monotonic() > deadline:
                raise RuntimeError("the pages got no first answer within 30 s")
            time.sleep(0.05)
        chance = random.Random(7)
        started = []  # time.time() when join k began: its event carries count k
        for _ in range(args.joins):
            time.sleep(chance.expovariate(args.rate))
            started.append(time.time())
            room.append(RawParticipant(server))
        deadline = time.monotonic() + 30
        while not all(
            any(e.kind == "joined" and e.data["count"] == args.joins for e in p.events)
            for p in pages
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("some pages did not hear every join within 30 s")
            time.sleep(0.05)
    finally:
        for page in pages:
            page.close()
        for member in room:
            member.close()
    late, problems, requests = [], 0, 0
    for page in pages:
        numbers = [int(str(e.id).rpartition(".")[2]) for e in page.events]
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            problems += 1
        joined = {e.data["count"]: e.at for e in page.events if e.kind == "joined"}
        late += [(joined[k + 1] - began) * 1000 for k, began in enumerate(started)]
        requests += len(page.answers)
    print(
        f"{args.pages} Python pages, {args.joins} joins at {args.rate:g}/s: "
        + summary("join to page", late)
        + f"; {requests / args.pages / args.joins:.2f} requests per page per event; "
        f"{problems} pages with a gap or a repeat"
    )


RECORD = """
const Original = window.EventSource;
window.__received = [];
window.EventSource = function (url, options) {
  const source = new Original(url, options);
  source.addEventListener('joined', (event) => window.__received.push(
    {id: event.lastEventId, data: JSON.parse(event.data), at: Date.now()}));
  return source;
};
"""


def chromium_board(server, joins):
    """One board in Chromium; joins at a person's pace (one every 0.3 to 1.5 s)."""
    from playwright.sync_api import sync_playwright

    from workshop.browser import CHROMIUM_FLAGS, find_chromium

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_FLAGS
        )
        room = []
        try:
            page = browser.new_page()
            page.add_init_script(RECORD)
            page.goto(server.url + "/live")
            page.wait_for_function(
                "() => document.getElementById('count').textContent === '0'"
            )
            base = len(page.evaluate("window.__received"))
            chance, started = random.Random(3), []
            for _ in range(joins):
                time.sleep(chance.uniform(0.3, 1.5))
                started.append(time.time() * 1000)
                room.append(RawParticipant(server))
            page.wait_for_function(
                f"() => document.getElementById('count').textContent === '{joins}'"
            )
            received = page.evaluate("window.__received")[base:]
        finally:
            for member in room:
                member.close()
            browser.close()
    shown = {event["data"]["count"]: event["at"] for event in received}
    late = [shown[k + 1] - began for k, began in enumerate(started)]
    print(
        f"Chromium board, {joins} joins at a person's pace: "
        + summary("join to page", late)
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--joins", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="joins a second")
    parser.add_argument("--chromium", type=int, default=0, metavar="JOINS")
    args = parser.parse_args()
    allow_open_sockets(args.pages + args.joins + 100)
    print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with start_server(APP, direct=True) as server:
        python_pages(server, args)
    if args.chromium:
        with start_server(APP, direct=True) as server:
            chromium_board(server, args.chromium)


if __name__ == "__main__":
    main()
