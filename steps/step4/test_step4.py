"""Step 4 checks: broadcast reaches every participant. Run: pytest steps/step4"""

import json
import threading
import time

import pytest

from workshop.harness import (
    StandInSocket,
    call,
    goes_ahead_while_held,
    join,
    need,
    start_server,
    together,
)

# The server's threads switch every microsecond instead of every 5 ms: a loop over the
# live dict is then interrupted by the others' joins, as in a busy room (a forced race).
RACE = {"WORKSHOP_SWITCH_INTERVAL": "0.000001"}


@pytest.fixture(scope="module")
def server(app_dir):
    """The app under test, its threads interleaving often (RACE)."""
    running = start_server(app_dir, env=RACE)
    yield running
    running.stop()


def room(connect, size):
    """`size` participants who have all heard each other join."""
    members = [join(connect) for _ in range(size)]
    last_name = members[-1][1]
    for client, _ in members[:-1]:
        client.wait_for_system(f"{last_name} joined the chat")
    return members


@pytest.mark.guide("step4.md#broadcast")
def test_everyone_hears_a_chat_message(connect):
    """A chat message reaches every participant, the sender included."""
    (alice, alice_name), (bob, _), (carol, _) = room(connect, 3)
    alice.say("hello everyone")
    for client in (alice, bob, carol):
        client.wait_for_chat(alice_name, "hello everyone")


@pytest.mark.guide("step4.md#broadcast")
def test_others_hear_who_joins_renames_and_leaves(connect):
    """Joining, renaming and leaving are announced to the others."""
    alice, _ = join(connect)
    bob, bob_name = join(connect)
    alice.wait_for_system(f"{bob_name} joined the chat")
    bob.rename("Bob4")
    alice.wait_for_system(f"{bob_name} is now known as Bob4")
    bob.close()
    alice.wait_for_system("Bob4 left the chat")


@pytest.mark.guide("step4.md#errors-stay-private")
def test_bad_input_reaches_only_the_sender(connect):
    """An error goes to the sender only: the others hear nothing of bad input."""
    (alice, alice_name), (bob, _) = room(connect, 2)
    alice.send_text("[1, 2]")
    alice.expect_error(after="a JSON array")
    alice.rename("")
    alice.expect_error(after="an empty name")
    alice.say("and now a real message")
    try:
        bob.wait_for_chat(alice_name, "and now a real message")
    except AssertionError:
        told = [
            m for m in bob.received if isinstance(m, dict) and m.get("type") == "error"
        ]
        if not told:
            raise
        raise AssertionError(
            f"Bob, who sent nothing wrong, was told Alice's error: {told[0]}. An error "
            "goes to its sender only: answer it with send_to(ws, ...), not broadcast."
        ) from None
    leaked = [
        m
        for m in bob.received
        if not isinstance(m, dict)
        or m.get("type") == "error"
        or "[1, 2]" in str(m.get("message"))
    ]
    assert not leaked, f"Bob received what only Alice should have: {leaked}"


@pytest.mark.guide("step4.md#broadcast")
def test_broadcast_reads_the_clients_under_clients_lock(chat_module):
    """broadcast() reads `clients` only under clients_lock: while another thread holds
    it, broadcast waits, then sends.

    The race made certain: the check holds the lock itself (a handler adding someone)
    and calls broadcast meanwhile. Caught 100 runs of 100 for the tutorial's loop over
    the live dict and for a copy taken without the lock (deterministic).
    """
    need(chat_module, "broadcast", "Write `broadcast(payload)`.")
    socket = StandInSocket()
    call(chat_module.add_client, 4040, socket, what="add_client(4040, ws)")
    try:
        went_ahead = goes_ahead_while_held(
            chat_module.clients_lock,
            *broadcasting(chat_module, "lock probe"),
            effect=lambda: any("lock probe" in text for text in socket.sent),
        )
        assert not went_ahead, (
            "broadcast read `clients` and sent while another thread held clients_lock. "
            "A handler thread may be adding or removing someone at that very moment: "
            "Python then stops the loop with `RuntimeError: dictionary changed size "
            "during iteration`. Copy the sockets under the lock, then send outside it."
        )
        waited = call(
            lambda: _wait_until(
                lambda: any("lock probe" in text for text in socket.sent)
            ),
            what="the probe's message to arrive",
        )
        assert waited, "broadcast sent nothing to the one connected client."
    finally:
        call(chat_module.remove_client, 4040, what="remove_client(4040)")


@pytest.mark.guide("step4.md#broadcast")
def test_broadcast_sends_outside_clients_lock(chat_module):
    """broadcast() sends outside clients_lock: a send can be slow, and everyone else
    waits for the lock meanwhile.

    Made certain, not timed: as broadcast sends, the stand-in socket notes whether the
    sending thread is broadcast's own and whether clients_lock is held (nobody else here
    takes it). Caught 100 runs of 100 for a loop that sends under the lock
    (deterministic).
    """
    need(chat_module, "broadcast", "Write `broadcast(payload)`.")
    lock, sends, broadcaster = chat_module.clients_lock, [], []
    socket = StandInSocket(
        on_send=lambda: sends.append((threading.get_ident(), lock.locked()))
    )
    call(chat_module.add_client, 4141, socket, what="add_client(4141, ws)")
    send_the_probe, what = broadcasting(chat_module, "send probe")

    def broadcast_the_probe():
        broadcaster.append(threading.get_ident())
        send_the_probe()

    try:
        try:
            call(broadcast_the_probe, what=what)
        except AssertionError:
            raise
        except Exception as error:  # the learner's code raised: say so, plainly
            raise AssertionError(
                f"{what} raised {type(error).__name__}: {error}"
            ) from None
        held = [locked for thread, locked in sends if thread == broadcaster[0]]
        assert not any(held), (
            "broadcast sent while it held clients_lock. One slow send (a participant "
            "on a bad network, or who stopped reading) then keeps everyone else from "
            "joining, leaving or being listed: copy the sockets under the lock, and "
            "send after the `with` block."
        )
    finally:
        call(chat_module.remove_client, 4141, what="remove_client(4141)")


def broadcasting(chat_module, message: str):
    """A call that sends the system message `message` to the room, and its name."""
    probe = {"type": "system", "message": message}
    # Where broadcast only publishes, deliver(text) loops (scale.md#publish).
    deliver = getattr(chat_module, "deliver", None)
    if deliver is not None:
        return (lambda: deliver(json.dumps(probe))), "deliver(...)"
    return (lambda: chat_module.broadcast(probe)), "broadcast(...)"


def _wait_until(condition, seconds: float = 2.0):
    deadline = time.monotonic() + seconds
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return result


@pytest.mark.guide("step4.md#a-crowd-at-once")
def test_a_crowd_joining_at_once_all_hear_each_other(connect, server, app_dir):
    """A crowd arriving at the same moment, three times, while the one before leaves:
    all get distinct names and hear a message, and no handler fails meanwhile.

    Each wave of 30 is released by a barrier as the previous wave leaves, and the
    server's threads switch every microsecond instead of every 5 ms (RACE), so joins
    and departures interrupt each other's broadcasts. This check alone caught the
    tutorial's loop over the live dict in 100 runs of 100, the tutorial's whole
    broadcast in 99 of 100, and never failed the finished code in 100 runs; with the
    lock check above, the step catches both in 100 of 100 (python -m workshop.mistakes
    --repeat 100 step4-live-dict-loop).
    """
    size, present, names = 30, [], []
    for wave in range(3):
        leaving, arrived = present, []

        def move(number, leaving=leaving, arrived=arrived):
            if number < size:
                arrived.append(connect())
            else:
                leaving[number - size].close()

        problems = together(
            size + len(leaving), move, f"wave {wave + 1} of the crowd", app_dir
        )
        assert not problems, f"In wave {wave + 1} of the crowd: {problems[0]}"
        for number, client in enumerate(arrived):  # each learns its name from its own
            client.say(f"roll call {wave}.{number}")
        names += [
            client.wait_for(
                lambda m, tag=f"roll call {wave}.{n}": m.get("message") == tag,
                f"roll call {wave}.{n}",
            )["username"]
            for n, client in enumerate(arrived)
        ]
        present = arrived
    assert len(set(names)) == len(names), (
        f"{len(names)} participants got only {len(set(names))} distinct names."
    )
    present[0].say("did everyone get this?")
    for client in present:
        client.wait_for_chat(names[-size], "did everyone get this?")
