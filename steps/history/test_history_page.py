"""Chapter "history" in a real browser: a newcomer's page shows the history, and a
page that reconnects after a crash shows no message twice.

Run: pytest steps/history
"""

import os
import signal

import pytest

from workshop.harness import start_server

# The browser fixtures: open_tab (see workshop/browser.py).
pytest_plugins = ["workshop.browser"]


@pytest.fixture
def server(app_dir, tmp_path):
    """The app as `python app.py --port P`, on this check's own history file."""
    running = start_server(app_dir, env=settings(tmp_path), direct=True)
    yield running
    running.stop()


def settings(tmp_path) -> dict:
    return {"CHAT_HISTORY": str(tmp_path / "chat-history.db")}


@pytest.mark.guide("history.md#ids")
def test_after_a_crash_the_page_shows_each_message_once(
    server, open_tab, app_dir, tmp_path, checkpoint_screenshot
):
    """Alice says three things; the server is killed and started again on the same
    port and file. Her page reconnects and still shows each message once; Bob, new,
    sees them after his own "joined the chat"."""
    alice = open_tab()
    said = [f"before the crash {n}" for n in range(3)]
    for text in said:
        alice.say(text)
        alice.wait_for_line(text, kind="chat")
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    alice.wait_for_status("Disconnected")
    again = start_server(app_dir, env=settings(tmp_path), direct=True, port=server.port)
    try:
        alice.wait_for_status("Connected", timeout=15)
        shown = alice.mark()
        bob = open_tab(again)
        try:
            bob.wait_for_line(said[-1], kind="chat")
        except AssertionError:
            raise AssertionError(
                "Bob, new after the restart, should see the three messages after his "
                f'own "joined the chat".\n{bob.describe()}'
            ) from None
        checkpoint_screenshot(bob, suffix="-newcomer")  # for history.md
        alice.say("after the crash")  # once it is back, what came before is in place
        alice.wait_for_line("after the crash", kind="chat", after=shown)
        texts = [line.split(": ", 1)[-1] for line in alice.texts("chat")]
        assert texts == [*said, "after the crash"], (
            "After reconnecting, the server sends Alice's page the history again: the "
            "page must skip a message whose id it has shown already (lastChatId).\n"
            + alice.describe()
        )
    finally:
        again.stop()
