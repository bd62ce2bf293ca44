"""Step 2 checks: the client store, safe for many handler threads at once. Run: pytest
steps/step2

These checks import app.py and call its functions directly: the store has no network
side yet.
"""

import threading

import pytest

from workshop.harness import need


@pytest.fixture
def store(chat_module):
    """app.py's store, emptied before each check."""
    clients = need(chat_module, "clients", "Create the client store: `clients = {}`.")
    clients.clear()
    return chat_module


def add_client(store, ws_id, ws=None):
    add = need(
        store,
        "add_client",
        "Write `add_client(ws_id, ws)`: it registers a connection, returns its name.",
    )
    return add(ws_id, ws if ws is not None else object())


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


@pytest.mark.guide("step2.md#distinct-default-names")
def test_default_names_stay_distinct_when_many_join_at_once(store):
    """800 connections joining from 16 threads at once all get different names, and all
    are stored.
    """
    names, barrier = [], threading.Barrier(16)

    def join_fifty(thread_number):
        barrier.wait()  # start together, as a room full of people clicking "join" does
        for i in range(50):
            names.append(add_client(store, thread_number * 1000 + i))

    threads = [threading.Thread(target=join_fifty, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(names)) == 800, (
        f"800 joins produced only {len(set(names))} distinct names. Two people must "
        "never share a default name: "
        "take the next number from a counter (the tutorial's id(ws) % 10000 repeats)."
    )
    assert len(store.clients) == 800, (
        f"800 joins left {len(store.clients)} entries in `clients`: some were lost."
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
    remove = need(
        store, "remove_client", "Write `remove_client(ws_id)`: it forgets a connection."
    )
    remove(7)
    assert 7 not in store.clients, "remove_client(7) left the connection in `clients`."
    try:
        remove(7)
    except KeyError:
        raise AssertionError(
            "remove_client raised KeyError for a connection already gone. Use "
            "clients.pop(ws_id, None): "
            "a cleanup that raises skips everything after it (the tutorial lost its "
            '"left the chat" this way).'
        ) from None


def rename(store, ws_id, name):
    do_rename = need(
        store,
        "rename",
        "Write `rename(ws_id, new_name)`: it renames and returns the old name.",
    )
    return do_rename(ws_id, name)


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
    with pytest.raises(taken, match="taken") as refused:
        rename(store, 22, "gRACE")
    assert store.clients[22]["username"] == second, (
        "The refused rename still changed the name: clients[22] is "
        f"{store.clients[22]!r}."
    )
    assert refused.value.args, "NameTaken should say which name is taken."


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
            "own "
            "name does not count as taken: compare with the old name first."
        ) from None
    assert store.clients[31]["username"] == "Alice"
