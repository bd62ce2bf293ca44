"""Step 7 checks in a real browser: the page answers the heartbeat. Run: pytest
steps/step7

A tab that only listens must stay in the room: the server takes a participant who says
nothing at all for SILENCE_LIMIT_SECONDS for a closed laptop, so the page answers each
ping.
"""

import json

import pytest
from playwright.sync_api import Error as PlaywrightError

from workshop.harness import online, start_server

# The browser fixtures: open_tab (see workshop/browser.py).
pytest_plugins = ["workshop.browser"]

HEARTBEAT_SECONDS = 0.15
# The app takes a participant silent for max(3 heartbeats, 0.6 s) for gone: three
# limits.
QUIET_SECONDS = 3 * max(3 * HEARTBEAT_SECONDS, 0.6)


@pytest.fixture(scope="module")
def server(app_dir):
    """The app as `python app.py`, pinging every 0.15 s."""
    env = {"CHAT_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS)}
    running = start_server(app_dir, env=env, direct=True)
    yield running
    running.stop()


@pytest.mark.guide("step7.md#heartbeat")
def test_an_idle_tab_answers_pings_and_stays_in_the_room(server, open_tab):
    """A tab left alone for three silence limits stays in the room under its own name:
    the page answers every ping with a pong, and never shows the pings."""
    tab = open_tab()
    socket = tab.sockets[-1]
    try:
        socket.wait_for_event("close", timeout=QUIET_SECONDS * 1000)
    except PlaywrightError:
        pass  # still open after three silence limits: what we want
    else:
        raise AssertionError(
            f"The server closed the idle tab's connection within {QUIET_SECONDS:g} s. "
            "The server takes a participant who says nothing at all for a vanished "
            "laptop: "
            'answer each {"type": "ping"} with {"type": "pong"} in index.html.\n'
            + tab.describe()
        )
    assert tab.name in online(server), (
        f"{tab.name} is no longer listed by /users after sitting "
        f"quietly.\n{tab.describe()}"
    )
    pongs = [f for f in socket_frames_sent(tab) if f.get("type") == "pong"]
    assert pongs, "The tab stayed, but sent no pong: what keeps it in the room?"
    shown = " ".join(tab.texts())
    assert "ping" not in shown and "undefined" not in shown, (
        "The page shows the heartbeat's pings: it should show only chat, system and "
        "error messages, and ignore any other type (step5.md#errors-and-pings).\n"
        + tab.describe()
    )


def socket_frames_sent(tab) -> list[dict]:
    return [json.loads(frame) for frame in tab.sent]
