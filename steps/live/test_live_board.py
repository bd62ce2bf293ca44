"""Chapter "live" in a real browser: the board at /live follows the room in Chromium.

Run: pytest steps/live

Chromium's own EventSource reconnects after every answer, sending Last-Event-ID; the
check records every event the page receives and requires each once, in order.
"""

import time

import pytest
from playwright.sync_api import Error as PlaywrightError

from workshop.harness import POLL_MS, WAIT_SECONDS, join, start_server
from workshop.sse_client import ask, no_retry

# The browser fixtures: browser_context (see workshop/browser.py).
pytest_plugins = ["workshop.browser"]

FEED_WAIT_SECONDS = 0.75  # short: the page reconnects often while the check runs

# Before the page's own script: every event its EventSource dispatches, in order.
RECORD_EVENTS = """
const Original = window.EventSource;
window.__received = [];
window.EventSource = function (url, options) {
  const source = new Original(url, options);
  for (const kind of ['count', 'joined', 'left', 'renamed']) {
    source.addEventListener(kind, (event) => window.__received.push(
      {kind, id: event.lastEventId, data: JSON.parse(event.data)}));
  }
  return source;
};
"""


@pytest.fixture(scope="module")
def server(app_dir):
    """The app as `python app.py --port P`, answering "no news" after 0.75 s."""
    env = {"CHAT_EVENTS_WAIT_SECONDS": str(FEED_WAIT_SECONDS)}
    running = start_server(app_dir, env=env, direct=True)
    yield running
    running.stop()


@pytest.mark.guide("live.md#the-board")
def test_the_board_follows_the_room_in_chromium(
    server, browser_context, connect, checkpoint_screenshot
):
    """The board at /live shows the count and who came and went, live; Chromium's
    EventSource resumes after every answer with Last-Event-ID, and sees every event
    once."""
    # Without `retry:` the page would ask again only every 3 s: say so now, not late.
    first = ask(server, "/live/events", timeout=FEED_WAIT_SECONDS * 2)
    if first.status == 200 and first.retry_ms is None:
        raise no_retry("/live/events")
    page = browser_context.new_page()
    page.add_init_script(RECORD_EVENTS)
    asked = []  # the Last-Event-ID of each request the page made for news
    page.on(
        "request",
        lambda request: (
            asked.append(request) if request.url.endswith("/live/events") else None
        ),
    )
    response = page.goto(server.url + "/live")
    assert response is not None and response.status == 200, (
        f"GET /live answered {response.status if response else 'nothing'}: the board "
        'is live.html, served by `@live.get("")`.'
    )

    def shows(count: str, line: str) -> None:
        try:
            page.wait_for_function(
                """([count, line]) =>
                  document.getElementById('count').textContent === count &&
                  [...document.querySelectorAll('#changes li')]
                    .some(item => item.textContent === line)""",
                arg=[count, line],
                timeout=WAIT_SECONDS * 1000,
                polling=POLL_MS,
            )
        except PlaywrightError:
            shown = page.locator("body").inner_text()
            raise AssertionError(
                f"The board should show {count} online and {line!r}; it shows:\n{shown}"
            ) from None

    alice, alice_name = join(connect)
    bob, bob_name = join(connect)
    shows("2", f"{bob_name} joined")
    alice.rename("Alice")
    shows("2", f"{alice_name} is now Alice")
    alice.close()
    shows("1", "Alice left")
    # Nothing happens for a while: the page asks again, and once more after an answer
    # with no news, each time with the id of the last event it saw.
    waiting, deadline = len(asked) + 2, time.monotonic() + WAIT_SECONDS
    while len(asked) < waiting and time.monotonic() < deadline:
        page.wait_for_timeout(50)  # Playwright reports requests while it waits
    carol, carol_name = join(connect)
    shows("2", f"{carol_name} joined")

    from workshop.browser import ChatTab  # after pytest_plugins has loaded the module

    checkpoint_screenshot(ChatTab(page, "the board"), suffix="-board")  # for live.md
    received = page.evaluate("window.__received")
    numbers = [int(event["id"].rpartition(".")[2]) for event in received]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), (
        f"The page received event ids {numbers}: a gap or a repeat."
    )
    assert [event["kind"] for event in received].count("count") == 1, (
        f"The page started over: {received}"
    )
    sent = [request.all_headers().get("last-event-id") for request in asked]
    assert len(sent) >= 3 and sent[0] is None and all(sent[1:]), (
        "After its first request, EventSource should send the id of the last event it "
        f"saw as Last-Event-ID each time it asks again; it sent {sent}."
    )
