"""Step 6 checks: GET /users lists who is online. Run: pytest steps/step6"""

import pytest

from workshop.harness import (
    StandInSocket,
    call,
    eventually,
    goes_ahead_while_held,
    join,
    need,
    reads_of,
)


def users(server) -> dict:
    """GET /users, which must answer {"users": [...], "count": n}."""
    online = server.get_json("/users")
    assert isinstance(online, dict) and isinstance(online.get("users"), list), (
        f'GET /users should answer {{"users": [...], "count": n}}, not {online!r}.'
    )
    return online


def join_as(connect, name):
    client, default = join(connect)
    client.rename(name)
    client.wait_for_system(f"{default} is now known as {name}")
    return client


@pytest.mark.guide("step6.md#who-is-online")
def test_users_lists_everyone_connected(server, connect):
    """GET /users answers {"users": [...names], "count": n} for the people connected."""
    join_as(connect, "Uma6")
    join_as(connect, "Vic6")
    online = users(server)
    assert {"Uma6", "Vic6"} <= set(online["users"]), (
        f"Uma6 and Vic6 are connected, but /users says {online}."
    )
    assert online.get("count") == len(online["users"]), (
        f'"count" should be the number of users: {online}.'
    )


@pytest.mark.guide("step6.md#who-is-online")
def test_users_forgets_who_left(server, connect):
    """Someone who disconnects disappears from GET /users."""
    join_as(connect, "Wes6")
    leaver = join_as(connect, "Xia6")
    leaver.close()

    def users_without_xia():
        online = users(server)
        return online if "Xia6" not in online["users"] else None

    online = eventually(
        users_without_xia, "Xia6 to disappear from /users after disconnecting"
    )
    assert "Wes6" in online["users"], (
        f"Wes6 is still connected, but /users says {online}."
    )


@pytest.mark.guide("step6.md#who-is-online")
def test_users_reads_the_clients_under_clients_lock(chat_module):
    """online_users() reads `clients` only under clients_lock: while another thread
    holds it, the answer waits.

    The race made certain: the check holds the lock itself (a handler adding someone)
    and asks for the users meanwhile, noting whether `clients` is read before the lock
    is free. Caught 100 runs of 100 without the lock, the tutorial's code included
    (deterministic).
    """
    need(chat_module, "online_users", "Write `online_users(request)` for GET /users.")
    call(chat_module.add_client, 6060, StandInSocket(), what="add_client(6060, ws)")
    try:
        with reads_of(chat_module, "clients") as clients:
            clients.armed = True  # from here until the lock is free
            went_ahead = goes_ahead_while_held(
                chat_module.clients_lock,
                lambda: chat_module.online_users(None),
                "online_users(request)",
                effect=lambda: clients.read,
                finishing_counts=False,
            )
        assert not went_ahead, (
            "online_users read `clients` while another thread held clients_lock. A "
            "handler may be adding or removing someone at that moment: the list then "
            "fails with `RuntimeError: dictionary changed size during iteration`, or "
            '"count" disagrees with "users". Copy the names under the lock.'
        )
    finally:
        call(chat_module.remove_client, 6060, what="remove_client(6060)")
