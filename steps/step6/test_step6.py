"""Step 6 checks: GET /users lists who is online. Run: pytest steps/step6"""

import pytest

from workshop.harness import eventually, join


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
    online = server.get_json("/users")
    assert isinstance(online, dict) and isinstance(online.get("users"), list), (
        f'GET /users should answer {{"users": [...], "count": n}}, not {online!r}.'
    )
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
        online = server.get_json("/users")
        return online if "Xia6" not in online["users"] else None

    online = eventually(
        users_without_xia, "Xia6 to disappear from /users after disconnecting"
    )
    assert "Wes6" in online["users"], (
        f"Wes6 is still connected, but /users says {online}."
    )
