"""The finished chat, end to end in a real browser: the room chapter run as `python app.py`, used from tabs
of a headless Chromium the way a class would use it (two tabs, a phone, a heartbeat, who is online)."""

import json

import pytest
from playwright.sync_api import Error as PlaywrightError

from workshop.harness import eventually, start_server
from workshop.steps import finished

# The browser fixtures: open_tab, new_browser_context, checkpoint_screenshot (see workshop/browser.py).
pytest_plugins = ["workshop.browser"]

HEARTBEAT_SECONDS = (
    0.2  # the app's default is 30 s; short here, so pings arrive while the test watches
)
# The app drops a participant silent for max(3 heartbeats, 0.6 s): 7 pings (1.4 s) take a quiet tab past that.
PINGS_PAST_THE_SILENCE_LIMIT = 7
PHONE = {
    "viewport": {"width": 375, "height": 667},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
CONVERSATION = [
    ("phone", "Hi all, I'm on my phone. Can you read me?"),
    ("laptop", "Loud and clear, Sam."),
    ("phone", "Nice. The page keeps the box where I type in view."),
    (
        "laptop",
        "Try a long link: https://example.org/"
        + "a-very-long-path-without-any-spaces-" * 3,
    ),
    ("phone", "It wraps instead of making the page wider."),
    ("laptop", "And the heartbeat pings never show up as lines."),
    ("phone", "Good. What was the command to rename?"),
    ("laptop", "Type /name and then your name."),
    ("phone", "Thanks! See you at step 7."),
]


@pytest.fixture(scope="module")
def app_dir():
    return finished().solution_dir


@pytest.fixture(scope="module")
def server(app_dir):
    """The finished app, started as the guide starts it: python app.py --host 127.0.0.1 --port P."""
    running = start_server(
        app_dir, env={"CHAT_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS)}, direct=True
    )
    yield running
    running.stop()


@pytest.fixture
def phone_context(new_browser_context):
    return new_browser_context(**PHONE)


def online(server) -> list[str]:
    return sorted(server.get_json("/users")["users"])


def test_two_tabs_chat_rename_and_leave_and_users_lists_who_is_online(server, open_tab):
    """The tutorial's "Testing the Chat", step by step, including `curl /users`."""
    alice, bob = open_tab(), open_tab()
    alice.say("/name Alice")
    bob.wait_for_line(f"{alice.name} is now known as Alice", kind="system")
    bob.say("/name Bob")
    alice.wait_for_line(f"{bob.name} is now known as Bob", kind="system")
    eventually(
        lambda: online(server) == ["Alice", "Bob"], "GET /users to list Alice and Bob"
    )

    alice.say("Hello Bob")
    for tab in (alice, bob):
        assert tab.wait_for_line("Hello Bob", kind="chat") == "Alice: Hello Bob", (
            tab.describe()
        )

    bob.close()
    alice.wait_for_line("Bob left the chat", kind="system")
    eventually(
        lambda: online(server) == ["Alice"],
        "GET /users to list only Alice once Bob left",
    )


def test_heartbeat_pings_never_show_and_an_idle_tab_stays_in_the_room(server, open_tab):
    """Every frame except {"type": "ping"} becomes exactly one line, pings none; and a tab that only listens
    outlives the server's silence limit (the page answers each ping), so it is not dropped as gone."""
    tab = open_tab()
    socket = tab.sockets[-1]
    for _ in range(PINGS_PAST_THE_SILENCE_LIMIT):
        try:
            socket.wait_for_event(
                "framereceived",
                lambda frame: json.loads(frame)["type"] == "ping",
                timeout=5000,
            )
        except PlaywrightError as error:
            raise AssertionError(
                f"The quiet tab lost its connection ({error}): does the page answer pings?"
            ) from None
    assert tab.name in online(server), (
        f"{tab.name} was dropped while its tab sat quietly open.\n{tab.describe()}"
    )
    with socket.expect_event(
        "framereceived", lambda frame: "after the heartbeats" in frame
    ):
        tab.say("after the heartbeats")
    tab.wait_for_line("after the heartbeats", kind="chat")

    frames = [json.loads(frame) for frame in tab.frames]
    said = next(
        number
        for number, frame in enumerate(frames)
        if frame.get("message") == "after the heartbeats"
    )
    readable = [frame for frame in frames[: said + 1] if frame["type"] != "ping"]
    shown = tab.lines()[: len(readable)]
    assert [line["text"] for line in shown] == [
        f"{frame['username']}: {frame['message']}"
        if frame["type"] == "chat"
        else frame["message"]
        for frame in readable
    ], tab.describe()
    assert not any("ping" in text or "undefined" in text for text in tab.texts()), (
        tab.describe()
    )


def test_the_page_connects_with_ws_or_wss_to_match_its_own_scheme(
    server, open_tab, browser_context
):
    """ws:// on an http:// page; wss:// on an https:// page (a browser refuses ws:// from a secure page)."""
    plain = open_tab()
    assert plain.sockets[0].url == server.ws_url

    # The same page, as if served over https by a proxy: Playwright answers the request with it.
    page = browser_context.new_page()
    _, _, chat_page = server.get("/")
    page.route(
        "https://chat.test/",
        lambda route: route.fulfill(body=chat_page, content_type="text/html"),
    )
    with page.expect_websocket() as opened:
        page.goto("https://chat.test/")
    assert opened.value.url == "wss://chat.test/ws/chat"


def test_the_page_is_labelled_for_screen_readers(open_tab):
    """The message list is a live log, and the box and the button have names a screen reader can say."""
    page = open_tab().page
    log = page.get_by_role("log", name="Chat messages")
    assert log.get_attribute("aria-live") == "polite"
    assert "joined the chat" in log.inner_text()
    assert page.get_by_role("textbox", name="Message").is_editable()
    assert page.get_by_role("button", name="Send").is_visible()
    assert page.get_by_role("status").inner_text() == "Connected"


def test_the_page_is_usable_on_a_phone(open_tab, phone_context, checkpoint_screenshot):
    """At phone width: laid out for the phone, no sideways scrolling, the newest line and the input in view."""
    phone = open_tab(context=phone_context)
    laptop = open_tab()
    phone.say("/name Sam")
    laptop.wait_for_line("is now known as Sam")
    laptop.say("/name Priya")
    phone.wait_for_line("is now known as Priya")
    for who, text in CONVERSATION:
        (phone if who == "phone" else laptop).say(text)
        phone.wait_for_line(text, kind="chat")

    page = phone.page
    width, height = PHONE["viewport"]["width"], PHONE["viewport"]["height"]
    layout = page.evaluate("""() => ({
        width: document.documentElement.clientWidth,
        scrollWidth: document.documentElement.scrollWidth,
        inputFontPx: parseFloat(getComputedStyle(document.getElementById('input')).fontSize),
    })""")
    assert layout["width"] == width, (
        f"the page is laid out {layout['width']} px wide on a {width} px phone: viewport meta?"
    )
    assert layout["scrollWidth"] <= width, (
        f"the page scrolls sideways ({layout['scrollWidth']} px wide)"
    )
    assert layout["inputFontPx"] >= 16, (
        "phones zoom in on an input whose text is smaller than 16 px"
    )

    box = page.locator("#input").bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= height, (
        f"the message box is not in view on the phone: {box}"
    )
    shown_area, newest = (
        page.locator("#messages").bounding_box(),
        page.locator("#messages > .msg").last.bounding_box(),
    )
    assert page.evaluate("document.getElementById('messages').scrollTop") > 0, (
        "the conversation is longer than the screen, so the list should have scrolled down"
    )
    assert newest["y"] + newest["height"] <= shown_area["y"] + shown_area["height"], (
        "the newest line is out of view"
    )
    checkpoint_screenshot(phone, suffix="-phone")
