"""Unit checks of the code handed out ready-made, which the learners use but do not write:
the room chapter's Outbox (solutions/room/classroom.py) and the rate limit (RateLimit).

The Outbox runs for real (its couriers and watchdog are threads) against fake
connections; every wait is for an event, with a deadline."""

import ast
import importlib.util
import itertools
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

from workshop.steps import ROOT, STEPS, step

DEADLINE_SECONDS = 5.0
_names = itertools.count()


def load(path: Path) -> ModuleType:
    """A fresh copy of the module: its own queues, couriers and settings."""
    spec = importlib.util.spec_from_file_location(f"handout_{next(_names)}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


class FakeSocket:
    """What an Outbox needs of Cello's WebSocket: send_text (which may stall, as for a
    participant who stopped reading) and close."""

    def __init__(self, stalled: bool = False, gone: bool = False):
        self.sent: list[str] = []
        self.closed = threading.Event()
        self.arrived = threading.Condition()
        self.released = threading.Event()
        if not stalled:
            self.released.set()
        self.gone = gone

    def send_text(self, text: str) -> None:
        if self.gone:
            raise ConnectionError("the participant left")
        self.released.wait()  # a stalled participant: until the test lets go
        with self.arrived:
            self.sent.append(text)
            self.arrived.notify_all()

    def close(self) -> None:
        self.closed.set()

    def wait_for(self, count: int) -> list[str]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.sent) >= count, DEADLINE_SECONDS)
        return self.sent


class Dropped:
    """on_dropped for an Outbox: counts its calls, and can be waited for."""

    def __init__(self):
        self.calls = 0
        self.happened = threading.Event()

    def __call__(self):
        self.calls += 1
        self.happened.set()


@pytest.fixture
def classroom():
    module = load(step("room").solution_dir / "classroom.py")
    stalled: list[FakeSocket] = []
    module.stalled = stalled  # the test's stalled sockets, let go at the end
    yield module
    for socket in stalled:
        socket.released.set()  # their couriers finish and leave


def wait_until_a_courier_sends(classroom) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not any(courier.sending for courier in classroom._couriers):
        assert time.monotonic() < deadline, "no courier started sending"
        time.sleep(0.005)


def test_messages_arrive_in_order(classroom):
    sockets = [FakeSocket() for _ in range(3)]
    outboxes = [classroom.Outbox(socket, Dropped()) for socket in sockets]
    messages = [f"message {number}" for number in range(2000)]
    for message in messages:
        for outbox in outboxes:
            outbox.put(message)
    for socket in sockets:
        assert socket.wait_for(len(messages)) == messages


def test_put_never_waits_for_a_stalled_participant(classroom):
    socket = FakeSocket(stalled=True)
    classroom.stalled.append(socket)
    outbox = classroom.Outbox(socket, Dropped())
    started = time.monotonic()
    for number in range(1000):
        outbox.put(f"message {number}")
    assert time.monotonic() - started < 1.0, "put() waited for the send"


def test_a_participant_too_far_behind_is_dropped_once(classroom):
    classroom.MAX_BACKLOG = 10
    socket = FakeSocket(stalled=True)
    classroom.stalled.append(socket)
    dropped = Dropped()
    outbox = classroom.Outbox(socket, dropped)
    outbox.put("message 0")
    wait_until_a_courier_sends(classroom)  # message 0, stalled
    for number in range(1, 50):  # they wait, until there are too many
        outbox.put(f"message {number}")
    assert dropped.happened.wait(DEADLINE_SECONDS), "a full backlog was never dropped"
    assert socket.closed.wait(DEADLINE_SECONDS), "the dropped participant stays open"
    outbox.put("after the drop")
    socket.released.set()
    assert socket.wait_for(1) == ["message 0"], "only the send already under way ends"
    assert dropped.calls == 1


def test_a_stalled_courier_is_replaced_and_the_room_goes_on(classroom):
    """One courier, stuck on a participant who stopped reading: the watchdog gives up on
    that participant and hires another courier, so everyone else still hears."""
    classroom.DELIVERY_THREADS = 1
    classroom.SEND_TIMEOUT_SECONDS = 0.3
    stalled, listening = FakeSocket(stalled=True), FakeSocket()
    classroom.stalled.append(stalled)
    gave_up = Dropped()
    stuck = classroom.Outbox(stalled, gave_up)
    other = classroom.Outbox(listening, Dropped())
    stuck.put("first")
    stuck.put("second")
    wait_until_a_courier_sends(classroom)  # the only one, stalled
    other.put("hello room")
    assert listening.wait_for(1) == ["hello room"], "the room stopped with the courier"
    assert gave_up.happened.wait(DEADLINE_SECONDS) and stalled.closed.is_set()
    assert len(classroom._couriers) == 1, "the stuck courier was not replaced, once"
    stalled.released.set()
    assert stalled.wait_for(1) == ["first"]
    time.sleep(0.2)  # what would be sent next is sent at once: give it the chance
    assert stalled.sent == ["first"], "a dropped participant was sent more"
    assert gave_up.calls == 1


def test_a_participant_who_left_is_closed_without_a_drop(classroom):
    socket = FakeSocket(gone=True)
    dropped = Dropped()
    outbox = classroom.Outbox(socket, dropped)
    outbox.put("anyone there?")
    assert socket.closed.wait(DEADLINE_SECONDS)
    assert dropped.calls == 0, "leaving is announced by the handler, not as a drop"


def test_close_is_idempotent_and_stops_sending(classroom):
    socket = FakeSocket()
    outbox = classroom.Outbox(socket, Dropped())
    outbox.close()
    outbox.close()
    outbox.put("after close")
    other = FakeSocket()
    classroom.Outbox(other, Dropped()).put("sent after")
    other.wait_for(
        1
    )  # the couriers are idle now: nothing was queued for the closed one
    assert socket.closed.is_set() and socket.sent == []


# --- RateLimit ----------------------------------------------------------------------------


def rate_limit_file() -> Path | None:
    """Where the rate limit is handed out: the last step or chapter whose finished code
    defines `class RateLimit` (the guard chapter's, once it exists)."""
    found = None
    for candidate in STEPS:
        for path in sorted(candidate.solution_dir.glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if any(
                isinstance(node, ast.ClassDef) and node.name == "RateLimit"
                for node in tree.body
            ):
                found = path
    return found


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def limit_of():
    path = rate_limit_file()
    if path is None:
        pytest.skip(
            "no finished step hands out a RateLimit yet (the guard chapter will): "
            f"searched solutions/*/ for `class RateLimit` under {ROOT}"
        )
    module = load(path)
    clock = Clock()
    module.time = clock  # the bucket reads time.monotonic(): here, the test's clock

    def limit_of(per_second: float, burst: int):
        return module.RateLimit(per_second, burst), clock

    return limit_of


def test_a_burst_passes_then_the_limit_holds(limit_of):
    limit, _ = limit_of(per_second=5, burst=10)
    assert [limit.allow() for _ in range(12)] == [True] * 10 + [False] * 2


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst(limit_of):
    limit, clock = limit_of(per_second=5, burst=10)
    while limit.allow():
        pass
    clock.now += 0.2  # one token's worth
    assert [limit.allow(), limit.allow()] == [True, False]
    clock.now += 3600  # an hour of silence saves up one burst, not 18,000 messages
    assert sum(limit.allow() for _ in range(100)) == 10


def test_refused_messages_cost_nothing(limit_of):
    limit, clock = limit_of(per_second=2, burst=1)
    assert limit.allow()
    assert not any(limit.allow() for _ in range(1000))  # a client hammering
    clock.now += 0.5
    assert limit.allow(), "refusals must not push the next allowed message back"


def test_over_time_the_average_is_the_rate(limit_of):
    limit, clock = limit_of(per_second=5, burst=10)
    allowed = 0
    for _ in range(10 * 100):  # 10 s, a try every 10 ms
        allowed += limit.allow()
        clock.now += 0.01
    assert 10 + 5 * 10 - 1 <= allowed <= 10 + 5 * 10 + 1, allowed
