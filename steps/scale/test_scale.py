"""Chapter "One room, many processes" checks: one Redis, and copies of the app as if on
several machines.

Run: pytest steps/scale

Each check starts a redis-server of its own on a free port, and copies of your app as
`python app.py --host 127.0.0.N --port P`: 127.0.0.2 and 127.0.0.3 are this computer
too, playing two machines. The heartbeat is 0.5 s instead of 30 (through the
environment), so the silence limit is 1.5 s. Without redis-server these checks skip,
and say how to install it.
"""

import collections
import time

import pytest

from workshop.harness import WAIT_SECONDS, eventually

# The fixtures redis_server and machines (see workshop/machines.py).
pytest_plugins = ["workshop.machines"]

# The room's names live in Redis, which answers at once: a shorter wait than a reply's.
NAMES_SECONDS = WAIT_SECONDS / 2
ISLANDS = (
    "Each process delivers only to its own participants: broadcast() must publish to "
    "Redis (broker.publish), and deliver() what the broker hears."
)


def lists(machine, names: set[str], where: str) -> None:
    """GET /users on `machine` lists `names` (soon), or a failure that says why not."""
    try:
        eventually(lambda: names <= set(machine.users()["users"]), "", NAMES_SECONDS)
    except AssertionError:
        answer = machine.users()
        if len(answer.get("servers", {})) < 2:
            why = "the room is in Redis: return broker.users()"
        else:  # every process is there, under other names
            why = "rename() must claim the name: broker.claim(new_name, replacing=...)"
        raise AssertionError(
            f"{where}, but GET /users on {machine} answers {answer}: {why}."
        ) from None


def twice(person) -> dict:
    """The chat messages this person heard more than once."""
    counts = collections.Counter(person.chats())
    return {said: n for said, n in counts.items() if n > 1}


@pytest.mark.guide("scale.md#publish")
def test_every_process_hears_every_message_in_one_order(machines):
    """Participants on two processes (127.0.0.2 and 127.0.0.3, one Redis) all hear
    every message, once each, in the same order."""
    first, second = machines(2)
    room = [
        first.join("Ann"),
        second.join("Bob"),
        first.join("Amy"),
        second.join("Ben"),
    ]
    said = [f"{person.name} counts {number}" for number, person in enumerate(room)]
    for person, text in zip(room, said, strict=True):
        person.say(text)  # all at once, from both processes
    for listener in room:
        listener.hears_all(list(zip(room, said, strict=True)), ISLANDS)
    room[0].say("that is all")
    orders = {}
    for listener in room:
        listener.hears(room[0], "that is all")
        orders[str(listener)] = [what for _, what in listener.chats() if what in said]
        assert not twice(listener), (
            f"{listener} heard some messages twice: {twice(listener)}. Each process "
            "delivers what it hears from Redis, its own messages included: deliver "
            "nothing yourself besides."
        )
    assert len({tuple(order) for order in orders.values()}) == 1, (
        f"Not everybody heard the room in the same order: {orders}. Deliver in the "
        "order the broker hands you the messages, under clients_lock."
    )


@pytest.mark.guide("scale.md#names")
def test_users_and_names_cover_the_whole_room(machines):
    """GET /users on either process lists the whole room; default names are unique in
    it, and a name taken on one process is refused on the other (in any letter case)
    until its holder leaves."""
    first, second = machines(2)
    ann = first.join("Ann")
    second.join("Bob")
    for machine in (first, second):
        lists(machine, {"Ann", "Bob"}, f"Ann is on {first} and Bob on {second}")
    for machine in (first, second) * 3:
        machine.newcomer()
    users = eventually(
        lambda: (answer := first.users())["count"] >= 8 and answer, "8 people online"
    )
    folded = [name.casefold() for name in users["users"]]
    assert len(folded) == len(set(folded)) == users["count"], (
        f"Two people share a name, or the count is off: GET /users says {users}. Each "
        "process counted User-1, User-2, ... by itself: take numbers from "
        "broker.next_number() and claim the name with broker.claim()."
    )
    copycat = second.newcomer()
    copycat.rename("aNN")
    copycat.expect_error(
        f'a set_name to "aNN" on {second}, while Ann is on {first}: '
        "rename() must also broker.claim() the new name"
    )
    ann.leave()
    eventually(
        lambda: "Ann" not in second.users()["users"],
        f"GET /users on {second} to stop listing Ann once she left {first}: "
        "leave() must broker.release() the name",
        NAMES_SECONDS,
    )
    copycat.rename("Ann")
    copycat.wait_for_system("is now known as Ann")


@pytest.mark.guide("scale.md#per-process")
def test_workers_make_one_room_and_each_pings_its_own(machines):
    """`python app.py --workers 2` is one room served by two processes, and every
    participant gets the heartbeat's pings, whichever process holds them."""
    (machine,) = machines(1, "--workers", "2")
    try:  # both processes have started (the second may take a moment)
        eventually(lambda: len(machine.users().get("servers", {})) >= 2, "")
    except AssertionError:
        raise AssertionError(
            "Started with --workers 2, the app answers GET /users with "
            f"{machine.users()}: one process. app.run(..., workers=1) pins one: remove "
            "workers=1 (and return broker.users())."
        ) from None
    people = []
    while len(people) < 16:  # the kernel spreads connections over the two processes
        people.append(machine.join(f"W{len(people)}"))
        if all(machine.users()["servers"].values()):
            break
    else:
        raise AssertionError(
            f"{len(people)} participants joined, all in one of the two processes: "
            f"GET /users says {machine.users()}."
        )
    people[-1].say("one room?")
    for person in people:
        person.hears(
            people[-1],
            "one room?",
            "Did broker.start(deliver) run in each process? A thread started before "
            "app.run() is in none of Cello's forked workers: start in "
            '@app.on_event("startup").',
        )
    for person in people:
        person.client.wait_for(
            lambda m: m.get("type") == "ping",
            '{"type": "ping"} (the heartbeat, twice a second): start its thread in '
            '@app.on_event("startup"), not before app.run()',
            timeout=machine.silence_limit / 3 + WAIT_SECONDS,
        )


@pytest.mark.guide("scale.md#redis-outage")
def test_redis_stops_and_comes_back(machines, redis_server):
    """Redis stops mid-session: everybody is told, and each process keeps its own
    participants chatting. Redis comes back: the room is whole again, without a restart
    and with no message twice."""
    first, second = machines(2)
    ann, amy, bob = first.join("Ann"), first.join("Amy"), second.join("Bob")
    ann.say("before")
    bob.hears(ann, "before", ISLANDS)

    redis_server.stop()
    for person in (ann, amy, bob):
        person.told(
            "Lost contact",
            "The broker tells them (it delivers a system message): is deliver() "
            "given to broker.start()?",
        )
    ann.say("while Redis is away")
    amy.hears(ann, "while Redis is away", "Each process must keep its own room going.")

    redis_server.start()  # empty: it has forgotten everything
    for person in (ann, amy, bob):
        person.told("Back in touch", timeout=WAIT_SECONDS + 2)
    bob.say("together again")
    for person in (ann, amy):
        person.hears(bob, "together again", "The room should be one again.")
    lists(second, {"Ann", "Amy", "Bob"}, "Redis is back")
    copycat = second.newcomer()
    copycat.rename("amy")
    copycat.expect_error(f'a set_name to "amy" on {second} after the outage')
    for person in (ann, amy, bob):
        assert not twice(person), f"{person} heard some messages twice: {twice(person)}"


@pytest.mark.guide("scale.md#process-dies")
def test_a_killed_process_is_announced_and_frees_its_names(machines):
    """A process killed with SIGKILL: the others announce its participants as left,
    once, within the silence limit, and their names are free again."""
    first, second, third = machines(3)
    limit = third.silence_limit
    ann, bob = first.join("Ann"), second.join("Bob")
    for name in ("Cat", "Cid"):
        third.join(name)
    lists(first, {"Cat", "Cid"}, f"Cat and Cid are on {third}")

    third.kill()
    killed = time.monotonic()
    for person in (ann, bob):
        for name in ("Cat", "Cid"):
            person.told(
                f"{name} left the chat",
                f"{name} was on {third}, killed {time.monotonic() - killed:.1f} s "
                "before. The broker announces it when it runs in each process: "
                "broker.start(deliver) in the startup hook.",
                timeout=limit + WAIT_SECONDS,
            )
    ann.say("who is left?")
    bob.hears(ann, "who is left?")
    for person in (ann, bob):
        told = collections.Counter(person.news())
        assert told["Cat left the chat"] == told["Cid left the chat"] == 1, (
            f"{person} was told {told}: each departure once."
        )
    eventually(
        lambda: not {"Cat", "Cid"} & set(second.users()["users"]),
        f"GET /users on {second} to stop listing Cat and Cid",
    )
    newcomer = second.newcomer()
    newcomer.rename("Cat")
    newcomer.wait_for_system("is now known as Cat")
