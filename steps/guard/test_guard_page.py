"""Chapter "Keep the room safe" checks in a real browser: the page under its own
Content-Security-Policy.

Run: pytest steps/guard
"""

import pytest

from workshop.harness import start_server

# The browser fixtures: open_tab, browser_context (see workshop/browser.py).
pytest_plugins = ["workshop.browser"]

ONLINE_GREEN = "rgb(232, 245, 236)"  # #status.online's background in index.html


@pytest.fixture(scope="module")
def server(app_dir):
    """The app as `python app.py --port P`."""
    running = start_server(app_dir, direct=True)
    yield running
    running.stop()


@pytest.mark.guide("guard.md#methods-and-headers")
def test_the_page_works_under_its_content_security_policy(
    server, browser_context, open_tab
):
    """The page comes with a Content-Security-Policy and still works in Chromium: its
    own script and style run, two tabs chat, nothing is refused by the policy, and
    markup someone sends shows as text."""
    _, headers, _ = server.get("/")
    policy = {name.lower(): value for name, value in headers.items()}.get(
        "content-security-policy"
    )
    assert policy, (
        "GET / came without a Content-Security-Policy: serve the page with "
        "guard.page(...), which allows its own inline script and style by their hash."
    )
    refused = []
    browser_context.on(
        "console",
        lambda message: (
            refused.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        alice, bob = open_tab(), open_tab()  # each waits until its script has joined
    except AssertionError as problem:
        raise AssertionError(
            f"{problem}\nDid the policy ({policy}) refuse the page's own script? "
            f"Chromium said: {refused or 'nothing'}"
        ) from None
    alice.say("hello <img src=x onerror=alert(1)>")
    line = bob.wait_for_line("hello <img", kind="chat")
    assert "<img src=x onerror=alert(1)>" in line, bob.describe()
    background = bob.page.evaluate(
        "getComputedStyle(document.getElementById('status')).backgroundColor"
    )
    assert background == ONLINE_GREEN, (
        f"The status line's background is {background}, not the page's own green: "
        f"the policy ({policy}) refused the page's inline <style>."
    )
    assert not refused, f"Chromium refused, under the policy {policy}: {refused}"
    assert not alice.dialogs and not bob.dialogs, "The sent markup ran a script."
