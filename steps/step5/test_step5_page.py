"""Step 5 checks in a real browser: the tutorial's "Testing the Chat", automated. Run:
pytest steps/step5

Each check opens the chat page in tabs of a headless Chromium, types as a participant
would, and reads what the page shows. Without Chromium they skip, and say how to get it.
"""

import pytest
from playwright.sync_api import Error as PlaywrightError

from workshop.harness import POLL_MS, WAIT_SECONDS, start_server

# The browser fixtures: open_tab, checkpoint_screenshot (see workshop/browser.py).
pytest_plugins = ["workshop.browser"]

# The tutorial's page ran this in every other tab: it renders lines with innerHTML.
INJECTED_MESSAGE = """<img src=x onerror="document.title='pwned'">"""
# The same attack, short enough for a name (32 characters).
INJECTED_NAME = "<img src=x onerror=alert(1)>"
# Once every image of the page has loaded or failed, an onerror= attribute that was
# going to run has run.
IMAGES_SETTLED = "() => [...document.images].every(image => image.complete)"
# The page waits longer and longer between attempts to reconnect, at most 8 s.
RECONNECT_SECONDS = 12


@pytest.mark.guide("step5.md#run-it")
def test_a_message_typed_in_one_tab_appears_in_both(open_tab):
    """A message typed in one tab and sent with Enter appears in both tabs; Enter on an
    empty box sends nothing.
    """
    sender, other = open_tab(), open_tab()
    start = other.mark()
    # Blank: the page keeps it (the server would answer it with an error).
    sender.say("   ")
    sender.say("Hello from the first tab")
    for tab in (sender, other):
        line = tab.wait_for_line("Hello from the first tab", kind="chat")
        assert line == f"{sender.name}: Hello from the first tab", (
            f"{tab.label} should show the line as '{sender.name}: Hello from the first "
            f"tab', but shows {line!r}."
        )
    assert sender.page.locator("#input").input_value() == "", (
        "After a message is sent, the message box should be empty."
    )
    arrived = [
        line["text"] for line in other.lines()[start:] if line["kind"] != "system"
    ]
    assert len(arrived) == 1, (
        f"Enter on a blank message box sent something.\n{other.describe()}"
    )
    assert not sender.texts("error"), (
        f"The blank message reached the server, which refused it.\n{sender.describe()}"
    )


@pytest.mark.guide("step5.md#run-it")
def test_slash_name_and_closing_a_tab_are_announced_in_the_other_tab(
    open_tab, checkpoint_screenshot
):
    """`/name Alice` renames you in every tab, and closing a tab shows "... left the
    chat" in the one that stays.
    """
    alice, bob = open_tab(), open_tab()
    alice.say("/name Alice")
    for tab in (alice, bob):
        tab.wait_for_line(f"{alice.name} is now known as Alice", kind="system")
    bob.say("/name Bob")
    alice.wait_for_line(f"{bob.name} is now known as Bob", kind="system")
    alice.say("Hi Bob! Can you see this?")
    bob.wait_for_line("Alice: Hi Bob! Can you see this?", kind="chat")
    bob.say("Loud and clear. Off to lunch, bye!")
    alice.wait_for_line("Bob: Loud and clear.", kind="chat")
    bob.close()
    alice.wait_for_line("Bob left the chat", kind="system")
    checkpoint_screenshot(alice)


@pytest.mark.guide("step5.md#render-as-text")
def test_html_in_a_message_or_a_name_shows_as_text_and_never_runs(open_tab):
    """A message or a name written in HTML shows as those very characters in the other
    tab, and never runs.
    """
    sender, reader = open_tab(), open_tab()
    sender.say(INJECTED_MESSAGE)
    shown = reader.wait_for_line(f"{sender.name}: ", kind="chat")
    reader.page.wait_for_function(IMAGES_SETTLED, polling=POLL_MS)
    assert reader.page.title() != "pwned", (
        f"The message {INJECTED_MESSAGE} ran as code in the other tab: it changed the "
        "page's title to 'pwned'. "
        "The page turns messages into HTML (innerHTML); put them in with textContent."
    )
    assert shown == f"{sender.name}: {INJECTED_MESSAGE}", (
        "The other tab should show the message's characters as they were typed, but "
        f"shows {shown!r}."
    )

    sender.say(f"/name {INJECTED_NAME}")
    reader.wait_for_line(f"is now known as {INJECTED_NAME}", kind="system")
    sender.say("a name can carry HTML too")
    shown = reader.wait_for_line("a name can carry HTML too", kind="chat")
    reader.page.wait_for_function(IMAGES_SETTLED, polling=POLL_MS)
    assert not reader.dialogs, (
        f"The name {INJECTED_NAME} ran as code in the other tab (it opened an alert). "
        "The page turns names into HTML (innerHTML); put them in with textContent."
    )
    assert shown == f"{INJECTED_NAME}: a name can carry HTML too", (
        "The other tab should show the sender's name as it was typed, but shows "
        f"{shown!r}."
    )
    assert reader.page.locator("#messages img").count() == 0, (
        "A message or a name became an <img> element on the page."
    )


@pytest.mark.guide("step5.md#errors-and-pings")
def test_an_error_is_shown_to_its_sender_only_and_stands_out(open_tab):
    """A refused /name (someone has that name) shows the server's error to the sender
    only, styled unlike chat.
    """
    holder, latecomer = open_tab(), open_tab()
    holder.say("/name Marie")
    latecomer.wait_for_line("is now known as Marie")
    latecomer.say("/name marie")  # names are unique whatever their case
    latecomer.wait_for_line("", kind="error")
    latecomer.say("then I stay who I am")
    chat_line = latecomer.wait_for_line("then I stay who I am", kind="chat")
    holder.wait_for_line(chat_line)  # the holder has now seen everything before it too
    assert not holder.texts("error"), (
        "The error went to the other tab too: it is for its sender "
        f"only.\n{holder.describe()}"
    )
    look = (
        "line => { const s = getComputedStyle(line); "
        "return [s.color, s.backgroundColor, s.fontStyle]; }"
    )
    error_look = latecomer.page.locator("#messages > .msg.error").first.evaluate(look)
    chat_look = latecomer.page.locator("#messages > .msg.chat").first.evaluate(look)
    assert error_look != chat_look, (
        "An error line looks exactly like a chat line: style .msg.error apart."
    )


@pytest.mark.guide("step5.md#reconnect")
def test_the_page_reconnects_when_the_server_restarts(app_dir, open_tab):
    """When the server stops, the page says so; started again on the same port, it
    reconnects by itself and keeps your /name.
    """
    with start_server(app_dir) as first:
        tab = open_tab(first)
        tab.say("/name Rosalind")
        tab.wait_for_line("is now known as Rosalind")
        attempts = len(tab.sockets)
        first.stop()
        tab.wait_for_status("Disconnected")
        # Its first retry comes within a second: no restart needed to see it.
        if len(tab.sockets) == attempts:
            try:
                tab.page.wait_for_event("websocket", timeout=WAIT_SECONDS * 1000)
            except PlaywrightError:
                raise AssertionError(
                    f"The page did not try to connect again within {WAIT_SECONDS:g} s "
                    "of losing its connection: when the socket closes, call connect() "
                    "again a little later (setTimeout), waiting longer each time."
                ) from None
        start = tab.mark()
        with start_server(app_dir, port=first.port) as restarted:
            tab.wait_for_status("Connected", timeout=RECONNECT_SECONDS)
            # The restarted server has forgotten every name: the page asks for its /name
            # again.
            tab.wait_for_line("is now known as Rosalind", after=start)
            listener = open_tab(restarted)
            tab.say("back again")
            listener.wait_for_line("Rosalind: back again", kind="chat")
