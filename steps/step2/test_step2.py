"""Step 2 checks: the client store, safe for many handler threads at once. Run: pytest
steps/step2

These checks import app.py and call its functions directly: the store has no network
side yet. Every call has a deadline, so a function that waits forever (a lock taken
twice) fails its check and says where it waits, instead of hanging pytest.
"""

import sys
import threading
from pathlib import Path

import pytest

from workshop.harness import call, goes_ahead_while_held, need, together


@pytest.fixture
def store(chat_module):
    """app.py's store, emptied before each check."""
    clients = need(chat_module, "clients", "Create the client store: `clients = {}`.")
    clients.clear()
    lock = getattr(chat_module, "clients_lock", None)
    if lock is not None and hasattr(lock, "locked") and lock.locked():
        # An earlier check left a call stuck holding it: start this one afresh.
        chat_module.clients_lock = threading.Lock()
    return chat_module


def use(store, name: str, hint: str, *args):
    """store.name(*args), with a deadline."""
    function = need(store, name, hint)
    shown = ", ".join(repr(a) if isinstance(a, str | int) else "ws" for a in args)
    return call(function, *args, what=f"{name}({shown})")


def add_client(store, ws_id, ws=None):
    return use(
        store,
        "add_client",
        "Write `add_client(ws_id, ws)`: it registers a connection, returns its name.",
        ws_id,
        ws if ws is not None else object(),
    )


def rename(store, ws_id, name):
    return use(
        store,
        "rename",
        "Write `rename(ws_id, new_name)`: it renames and returns the old name.",
        ws_id,
        name,
    )


def remove_client(store, ws_id):
    return use(
        store,
        "remove_client",
        "Write `remove_client(ws_id)`: it forgets a connection.",
        ws_id,
    )


@pytest.mark.guide("step2.md#the-client-store")
def test_the_store_is_an_empty_dict(chat_module):
    """app.py has `clients`, an empty dict, and `clients_lock`, the lock guarding it."""
    clients = need(chat_module, "clients", "Create the client store: `clients = {}`.")
    assert clients == {} and isinstance(clients, dict), (
        f"`clients` should start as an empty dict, not {clients!r}."
    )
    lock = need(
        chat_module,
        "clients_lock",
        "Create the lock that guards it: `clients_lock = threading.Lock()`.",
    )
    assert hasattr(lock, "acquire") and hasattr(lock, "__enter__"), (
        f"`clients_lock` should be a lock, not {lock!r}."
    )


@pytest.mark.guide("step2.md#the-client-store")
def test_add_client_registers_a_connection(store):
    """add_client(ws_id, ws) stores {"ws": ws, "username": name} under ws_id and returns
    the name.
    """
    ws = object()
    name = add_client(store, 101, ws)
    assert isinstance(name, str) and name.startswith("User-"), (
        f'add_client should return a default name like "User-1", not {name!r}.'
    )
    assert store.clients.get(101) == {"ws": ws, "username": name}, (
        "After add_client(101, ws), clients[101] should be "
        f'{{"ws": ws, "username": {name!r}}}, '
        f"but clients is {store.clients!r}."
    )


@pytest.mark.guide("step2.md#the-client-store")
def test_every_change_to_the_store_waits_for_clients_lock(store):
    """add_client, rename and remove_client wait while another thread holds
    clients_lock.

    The race made certain: the check holds the lock itself (another handler in the
    middle of a change) and requires each call to wait for it. Caught 100 runs of 100
    for each function without the lock (deterministic).
    """
    add_client(store, 1)
    need(store, "rename", "Write `rename(ws_id, new_name)`.")
    need(store, "remove_client", "Write `remove_client(ws_id)`.")
    changes = [
        ("add_client(2, ws)", lambda: store.add_client(2, object())),
        ("rename(1, 'Lin')", lambda: store.rename(1, "Lin")),
        ("remove_client(1)", lambda: store.remove_client(1)),
    ]
    for what, change in changes:
        assert not goes_ahead_while_held(store.clients_lock, change, what), (
            f"{what} went ahead while another thread held clients_lock: two handler "
            "threads can then change `clients` at the same instant. Put its reads and "
            "writes of `clients` inside `with clients_lock:`."
        )


@pytest.mark.guide("step2.md#distinct-default-names")
def test_default_names_stay_distinct_when_many_join_at_once(store):
    """800 connections joining from 16 threads at once all get different names, and all
    are stored.

    The threads start together (a barrier) and the interpreter switches threads every
    microsecond instead of every 5 ms, so they interleave inside add_client. Without the
    lock, caught 100 runs of 100 (python -m workshop.mistakes --repeat 100
    step2-add-client-without-lock).
    """
    names, app_dir = [], Path(store.__file__).parent
    need(store, "add_client", "Write `add_client(ws_id, ws)`.")

    def join_fifty(thread_number):
        for i in range(50):
            names.append(store.add_client(thread_number * 1000 + i, object()))

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        raised = together(16, join_fifty, "16 threads calling add_client", app_dir)
    finally:
        sys.setswitchinterval(switching)
    assert not raised, (
        f"add_client raised {type(raised[0]).__name__}: {raised[0]} while 16 threads "
        "joined at once. Another thread changed `clients` during its loop: hold "
        "clients_lock for everything add_client does with `clients`."
    )
    assert len(set(names)) == 800, (
        f"800 joins produced only {len(set(names))} distinct names. Two people must "
        "never share a default name: take the next number from a counter (the "
        "tutorial's id(ws) % 10000 repeats), inside `with clients_lock:`."
    )
    assert len(store.clients) == 800, (
        f"800 joins left {len(store.clients)} entries in `clients`: some were lost. "
        "Hold clients_lock while you change it."
    )


@pytest.mark.guide("step2.md#distinct-default-names")
def test_default_names_skip_a_name_someone_chose(store):
    """A default name is never one that a connected client uses (ignoring case)."""
    first = add_client(store, 1)
    number = int(first.removeprefix("User-"))
    # Someone already renamed themselves to the next default names, in other letter
    # cases.
    store.clients[2] = {"ws": object(), "username": f"user-{number + 1}"}
    store.clients[3] = {"ws": object(), "username": f"USER-{number + 2}"}
    name = add_client(store, 4)
    assert name.casefold() not in {f"user-{number + 1}", f"user-{number + 2}"}, (
        f"add_client gave {name!r}, a name another client already uses. Skip names "
        "that name_taken() reports."
    )


@pytest.mark.guide("step2.md#leaving")
def test_remove_client_forgets_a_connection_and_may_be_called_twice(store):
    """remove_client(ws_id) forgets the connection, and a second call for the same id is
    no error.
    """
    add_client(store, 7)
    remove_client(store, 7)
    assert 7 not in store.clients, "remove_client(7) left the connection in `clients`."
    try:
        remove_client(store, 7)
    except KeyError:
        raise AssertionError(
            "remove_client raised KeyError for a connection already gone. Use "
            "clients.pop(ws_id, None): "
            "a cleanup that raises skips everything after it (the tutorial lost its "
            '"left the chat" this way).'
        ) from None


@pytest.mark.guide("step2.md#renaming")
def test_rename_stores_the_new_name_and_returns_the_old_one(store):
    """rename(ws_id, "Ada") stores the new name and returns the one it replaces."""
    old = add_client(store, 11)
    returned = rename(store, 11, "Ada")
    assert returned == old, (
        f"rename should return the old name, {old!r}, not {returned!r}."
    )
    assert store.clients[11]["username"] == "Ada", (
        f"After rename(11, 'Ada'), clients[11] is {store.clients[11]!r}."
    )


@pytest.mark.guide("step2.md#renaming")
def test_a_name_someone_else_uses_is_refused_ignoring_case(store):
    """Nobody can take a name another client uses, in any case: NameTaken says so."""
    add_client(store, 21)
    rename(store, 21, "Grace")
    second = add_client(store, 22)
    taken = need(
        store, "NameTaken", "Define `class NameTaken(ValueError)` for a name in use."
    )
    try:
        rename(store, 22, "gRACE")
    except taken as refused:
        assert refused.args, "NameTaken should say which name is taken."
    except Exception as other:
        raise AssertionError(
            f"Renaming to 'gRACE' while Grace is connected raised "
            f"{type(other).__name__}({other}), not NameTaken: raise NameTaken, the "
            "exception step 3's handler catches to answer the sender."
        ) from None
    else:
        raise AssertionError(
            "Renaming to 'gRACE' while Grace is connected was accepted: a name "
            "someone else uses, in any letter case, raises NameTaken."
        )
    assert store.clients[22]["username"] == second, (
        "The refused rename still changed the name: clients[22] is "
        f"{store.clients[22]!r}."
    )


@pytest.mark.guide("step2.md#renaming")
def test_you_may_rename_yourself_in_another_case(store):
    """Your own name is yours in any letter case: "alice" may become "Alice"."""
    add_client(store, 31)
    rename(store, 31, "alice")
    try:
        rename(store, 31, "Alice")
    except ValueError as problem:
        raise AssertionError(
            f"Renaming yourself from 'alice' to 'Alice' was refused ({problem}). Your "
            "own name does not count as taken: compare with the old name first."
        ) from None
    assert store.clients[31]["username"] == "Alice"
