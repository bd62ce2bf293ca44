"""Step 1 checks: a Cello app that starts and answers a request.

Run: pytest steps/step1
"""

import pytest
from cello import App

from workshop.harness import need


@pytest.mark.guide("step1.md#create-the-app")
def test_app_py_creates_a_cello_app(chat_module):
    """app.py creates a Cello application called `app`."""
    app = need(
        chat_module,
        "app",
        "Create it with `app = App()` (after `from cello import App`).",
    )
    assert isinstance(app, App), f"`app` should be a cello.App, but it is {app!r}."


@pytest.mark.guide("step1.md#answer-a-request")
def test_the_server_answers_a_request(server):
    """The server answers GET / with 200 OK and some text."""
    status, _, body = server.get("/")
    assert status == 200, (
        f"GET / answered {status} instead of 200: {body.strip()[:200]}"
    )
    assert body.strip(), "GET / answered 200 but with an empty body: return some text."
