"""Step 5 checks: the chat page served at /. Run: pytest steps/step5"""

import pytest


@pytest.mark.guide("step5.md#serve-the-page")
def test_root_serves_the_chat_page(server):
    """GET / answers the chat page as HTML: a form, and a script that opens /ws/chat."""
    status, headers, body = server.get("/")
    assert status == 200, f"GET / answered {status} instead of 200."
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert content_type.startswith("text/html"), (
        "GET / should answer HTML (Response.html), but its Content-Type is "
        f"{content_type!r}."
    )
    assert "<form" in body and "/ws/chat" in body, (
        "The page at / should have a <form> and connect to /ws/chat."
    )


@pytest.mark.guide("step5.md#render-as-text")
def test_the_page_never_turns_messages_into_html(server):
    """The page's script puts messages in with textContent, never innerHTML (that runs
    other people's script).
    """
    _, _, body = server.get("/")
    assert "<form" in body, "GET / does not serve the chat page yet."
    for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert risky not in body, (
            f"The page uses {risky}: a chat message such as <img src=x "
            "onerror=alert(1)> would run as code "
            "in every other participant's page. Build the lines with textContent / "
            "createTextNode."
        )
