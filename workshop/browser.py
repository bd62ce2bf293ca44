"""The chat page in a real browser: Chromium driven by Playwright, for the checks of the page.

A test file loads these fixtures with `pytest_plugins = ["workshop.browser"]` and provides a `server`
fixture (the step checks get theirs from workshop/pytest_plugin.py). Then:

    def test_something(open_tab):
        alice, bob = open_tab(), open_tab()     # two tabs on the chat page, each connected
        alice.say("hi")                          # types it and presses Enter
        bob.wait_for_line("hi")

One browser per pytest run (starting Playwright and Chromium costs about a CPU-second, and a
chapter's run holds several files of browser checks), a fresh browser context per test (its own
tabs, cookies and storage), so tests never see each other's pages.

Without a browser the checks skip, with one line saying how to get one. Under CI (CI=true) that is a
failure instead: the browser checks must never silently stop running.
"""

import itertools
import os
from pathlib import Path
from typing import NoReturn

import pytest

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:  # the browser fixture skips, and says how to install it
    sync_playwright = None  # type: ignore[assignment]

from workshop.chromium import find_chromium
from workshop.harness import POLL_MS, WAIT_SECONDS, ChatServer, gave_up_waiting
from workshop.pictures import save_if_changed
from workshop.steps import ROOT

CHROMIUM_FLAGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
GET_A_BROWSER = (
    "No Chromium for the browser checks: install one with `sudo apt-get install chromium` (Debian, Ubuntu) "
    "or `.venv/bin/python -m playwright install chromium` (any system), or set CHROMIUM=/path/to/chrome."
)
DESKTOP = {"width": 640, "height": 400}
PAGE_TIMEOUT_SECONDS = 10

# The lines the page shows, as {"kind": "chat" | "system" | "error", "text": ...}, in order.
LINES_JS = """() => [...document.querySelectorAll('#messages > .msg')].map(line => ({
    kind: ['chat', 'system', 'error'].find(kind => line.classList.contains(kind)) || line.className,
    text: line.textContent,
}))"""
FIND_LINE_JS = """([text, kind, after]) => [...document.querySelectorAll('#messages > .msg')].slice(after).some(
    line => line.textContent.includes(text) && (!kind || line.classList.contains(kind)))"""


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so the browser checks must run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium for this pytest run."""
    if sync_playwright is None:
        _unavailable(
            "Playwright is not installed: run `make setup` (it installs requirements.txt)."
        )
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=find_chromium(), args=CHROMIUM_FLAGS
            )
        except PlaywrightError as error:
            if "executable doesn't exist" not in str(error).lower():
                raise
            chromium = None
        if (
            chromium is None
        ):  # skipped outside the except block: a chained traceback would hide the one line
            _unavailable(GET_A_BROWSER)
        yield chromium
        chromium.close()


class ChatTab:
    """One browser tab showing the chat page: what a participant sees, and what they type."""

    def __init__(self, page, label: str):
        self.page = page
        self.label = label  # "tab 1", "tab 2", ... for failure messages
        self.name: str | None = None  # the name the server gave this tab when it joined
        self.script_errors: list[str] = []
        self.dialogs: list[
            str
        ] = []  # the text of every alert() the page showed (each is dismissed)
        self.sockets: list = []  # every WebSocket the page opened (Playwright WebSocket objects)
        self.frames: list = []  # every frame the page received on them, in order
        self.sent: list = []  # every frame the page sent on them, in order
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        page.on("dialog", self._dismiss)
        page.on("websocket", self._watch)

    def _watch(self, socket) -> None:
        self.sockets.append(socket)
        socket.on("framereceived", lambda frame: self.frames.append(frame))
        socket.on("framesent", lambda frame: self.sent.append(frame))

    def _dismiss(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    # --- what the tab shows ------------------------------------------------------------------------------------
    def lines(self) -> list[dict]:
        return self.page.evaluate(LINES_JS)

    def texts(self, kind: str | None = None) -> list[str]:
        return [
            line["text"]
            for line in self.lines()
            if kind is None or line["kind"] == kind
        ]

    def status(self) -> str | None:
        """The status line's text now, without waiting; None on a page without one."""
        return self.page.evaluate(
            "() => document.querySelector('#status')?.innerText ?? null"
        )

    def mark(self) -> int:
        """How many lines the tab shows now: wait_for_line(..., after=mark) looks only at later lines."""
        return len(self.lines())

    def describe(self) -> str:
        shown = self.lines()[-8:]
        text = (
            "\n".join(f"      [{line['kind']}] {line['text']}" for line in shown)
            or "      (no lines at all)"
        )
        errors = (
            f"\n    Its script failed with: {'; '.join(self.script_errors)}"
            if self.script_errors
            else ""
        )
        status = self.status()
        where = (
            f"its status line says {status!r}"
            if status is not None
            else f"it is at {self.page.url}, a page without the chat's status line"
        )
        return f"    {self.label} ({where}) shows:\n{text}{errors}"

    # --- waiting for what the tab shows ------------------------------------------------------------------------
    def wait_for_line(
        self,
        text: str,
        kind: str | None = None,
        after: int = 0,
        timeout: float = WAIT_SECONDS,
    ) -> str:
        """The text of the first line (after line number `after`) that contains `text`; waits for it."""
        try:
            self.page.wait_for_function(
                FIND_LINE_JS,
                arg=[text, kind, after],
                timeout=timeout * 1000,
                polling=POLL_MS,
            )
        except PlaywrightTimeout:
            gave_up_waiting(timeout)
            what = f"a {kind} line" if kind else "a line"
            raise AssertionError(
                f"{self.label} waited {timeout:g} s for {what} containing {text!r}.\n{self.describe()}"
            ) from None
        return next(
            line["text"]
            for line in self.lines()[after:]
            if text in line["text"] and (kind is None or line["kind"] == kind)
        )

    def wait_for_status(self, text: str, timeout: float = WAIT_SECONDS) -> None:
        """Wait until the status line starts with text ("Connected", "Disconnected")."""
        try:
            self.page.wait_for_function(
                "text => document.getElementById('status').textContent.startsWith(text)",
                arg=text,
                timeout=timeout * 1000,
                polling=POLL_MS,
            )
        except PlaywrightTimeout:
            gave_up_waiting(timeout)
            raise AssertionError(
                f"{self.label} waited {timeout:g} s for its status line to say {text!r}; it says {self.status()!r}."
            ) from None

    # --- what a participant does -------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """Type text into the message box and press Enter, as a participant does."""
        box = self.page.locator("#input")
        box.fill(text)
        box.press("Enter")

    def close(self) -> None:
        self.page.close()

    def screenshot(self, path: Path) -> None:
        """Save what the tab shows as a PNG, unless the saved one looks the same (other bytes
        from another machine's Chromium must not dirty the tree; mkdocs serve watches docs/)."""
        save_if_changed(path, self.page.screenshot(animations="disabled", caret="hide"))


@pytest.fixture
def new_browser_context(browser):
    """new_browser_context(**options) opens a fresh browser context (like a new private window), e.g. with a
    phone's viewport; each one is closed, with all its tabs, after the test."""
    contexts = []

    def new_browser_context(**options):
        contexts.append(browser.new_context(**{"viewport": DESKTOP, **options}))
        # Playwright waits 30 s by default; a page that never loads should fail a check sooner than that.
        contexts[-1].set_default_timeout(PAGE_TIMEOUT_SECONDS * 1000)
        return contexts[-1]

    yield new_browser_context
    for context in contexts:
        context.close()


@pytest.fixture
def browser_context(new_browser_context):
    """The test's own browser context: where open_tab() opens its tabs."""
    return new_browser_context()


@pytest.fixture
def open_tab(browser_context, server):
    """open_tab() opens the chat page of `server` in a new tab, waits until it has joined, and returns a ChatTab.
    open_tab(other_server) opens another server's page; open_tab(context=...) opens it in another context."""
    numbers = itertools.count(1)

    def open_tab(chat_server: ChatServer | None = None, context=None) -> ChatTab:
        chat_server = chat_server or server
        page = (context or browser_context).new_page()
        tab = ChatTab(page, f"tab {next(numbers)}")
        response = page.goto(chat_server.url + "/")
        if not page.locator("#messages").count():
            status = (
                f" (it answered {response.status})"
                if response and response.status != 200
                else ""
            )
            body = page.locator("body").inner_text().strip()[:200]
            raise AssertionError(
                f"GET / does not serve the chat page yet{status}. The browser shows:\n    {body or '(an empty page)'}"
            )
        # The first line a new tab shows is the server announcing it: "User-3 joined the chat".
        joined = tab.wait_for_line(" joined the chat", kind="system")
        tab.name = joined.removesuffix(" joined the chat")
        return tab

    return open_tab


@pytest.fixture
def new_tab(browser_context):
    """new_tab(label) opens a blank tab, as a ChatTab, for a check that goes somewhere else
    before the chat (a login form); new_tab(label, context=...) opens it in another
    context (another person's browser, with its own cookies)."""

    def new_tab(label: str, context=None) -> ChatTab:
        return ChatTab((context or browser_context).new_page(), label)

    return new_tab


@pytest.fixture
def checkpoint_screenshot(app_dir):
    """checkpoint_screenshot(tab) saves docs/screenshots/stepN.png for the guide (stepN-phone.png with
    suffix="-phone") when the checks run against solutions/stepN. A learner grading steps/ saves nothing."""

    def save(tab: ChatTab, suffix: str = "") -> None:
        if Path(app_dir).resolve().is_relative_to(ROOT / "solutions"):
            tab.screenshot(
                ROOT / "docs" / "screenshots" / f"{Path(app_dir).name}{suffix}.png"
            )

    return save
