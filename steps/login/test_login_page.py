"""Chapter "Log in before chatting" in a real browser: the login form, then the chat.

Run: pytest steps/login

Two people log in from their own browsers (a browser context each: its own cookies),
chat, and one logs out, as in a class.
"""

import secrets

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from workshop.harness import WAIT_SECONDS, start_server

# The browser fixtures: new_tab, new_browser_context, checkpoint_screenshot (see
# workshop/browser.py).
pytest_plugins = ["workshop.browser"]

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server(app_dir, tmp_path_factory):
    """The app as `python app.py --port P`, its accounts in a fresh folder."""
    env = {
        "CHAT_DATA": str(tmp_path_factory.mktemp("chat-data")),
        "CHAT_SECRET": secrets.token_hex(32),
        "CHAT_PASSWORD_HASHING": "cheapest",
    }
    running = start_server(app_dir, env=env, direct=True)
    yield running
    running.stop()


def wait_for_page(tab, path: str, why: str) -> None:
    """Wait until the tab shows the page at `path` ("/" or "/login")."""
    try:
        tab.page.wait_for_url(f"**{path}", timeout=WAIT_SECONDS * 1000)
    except PlaywrightTimeout:
        raise AssertionError(
            f"{tab.label} should be on {path} by now ({why}), but shows "
            f"{tab.page.url}.\n{tab.describe()}"
        ) from None


def visit(tab, server):
    """A visitor who is not logged in opens the chat: the page sends them to /login."""
    tab.page.goto(server.url + "/")
    wait_for_page(
        tab,
        "/login",
        "a visitor who is not logged in is refused at the WebSocket's upgrade; the "
        "page then asks GET /users, gets 401 and goes to the login form",
    )
    return tab


def log_in(tab, name: str, password: str = PASSWORD) -> None:
    """Type a name and a password into the login form and press Enter."""
    tab.page.locator("#name").fill(name)
    box = tab.page.locator("#password")
    box.fill(password)
    box.press("Enter")


@pytest.mark.guide("login.md#the-pages")
def test_two_people_log_in_chat_and_one_logs_out(
    server, new_tab, new_browser_context, checkpoint_screenshot
):
    """Ada and Grace open the chat and are sent to the login form; once logged in they
    chat under their names; the page's scripts never see the token; Ada logs out and is
    back at the form, and a wrong password is shown as an error there."""
    ada = visit(new_tab("Ada's tab"), server)
    checkpoint_screenshot(ada, suffix="-form")
    log_in(ada, "Ada")
    wait_for_page(ada, "/", "the login succeeded: the form goes on to the chat")
    ada.wait_for_line("Ada joined the chat", kind="system")
    grace = visit(new_tab("Grace's tab", context=new_browser_context()), server)
    log_in(grace, "Grace")
    grace.wait_for_line("Grace joined the chat", kind="system")
    ada.say("hello from Ada")
    grace.wait_for_line("Ada: hello from Ada", kind="chat")
    grace.say("hi Ada")
    ada.wait_for_line("Grace: hi Ada", kind="chat")
    checkpoint_screenshot(ada)
    assert "chat_token" not in ada.page.evaluate("document.cookie"), (
        "The page's scripts can read the token: its cookie needs HttpOnly."
    )
    ada.page.get_by_role("button", name="Log out").click()
    wait_for_page(ada, "/login", "POST /logout answers with a redirect to /login")
    grace.wait_for_line("Ada left the chat", kind="system")
    ada.page.goto(server.url + "/")
    wait_for_page(ada, "/login", "Ada logged out: her cookie no longer holds a token")
    log_in(ada, "grace", "not her password")
    problem = ada.page.locator("#problem")
    try:
        problem.get_by_text("Wrong name or password").wait_for(
            timeout=WAIT_SECONDS * 1000
        )
    except PlaywrightTimeout:
        shown = ada.page.evaluate(
            "() => document.querySelector('#problem')?.innerText ?? null"
        )
        raise AssertionError(
            "A wrong password should be shown on the form; "
            + (
                f"it says {shown!r}."
                if shown is not None
                else f"the tab went on to {ada.page.url}: the login was let through."
            )
        ) from None
