"""Chapter "Log in before chatting" checks: a signed token, or no chat.

Run: pytest steps/login

Each check starts the app as `python app.py --host 127.0.0.1 --port P`, with its
accounts in a temporary folder, a key it knows (so that it can sign tokens of its own: a
valid one, an expired one) and the cheapest password hashing, all through the
environment.
"""

import json
import secrets
import time

import jwt
import pytest

from workshop.harness import CheckFailure, start_server

SECRET = secrets.token_hex(32)
PASSWORD = "correct horse battery"
COOKIE = "chat_token"


@pytest.fixture(scope="module")
def server(app_dir, tmp_path_factory):
    """The app as `python app.py --port P`, its accounts in a fresh folder."""
    data = tmp_path_factory.mktemp("chat-data")
    env = {
        "CHAT_DATA": str(data),
        "CHAT_SECRET": SECRET,
        "CHAT_PASSWORD_HASHING": "cheapest",  # the real one takes ~0.2 s per login
    }
    running = start_server(app_dir, env=env, direct=True)
    running.data = data
    yield running
    running.stop()


def token(name: str, seconds: float = 600, key: str = SECRET) -> str:
    """A token as the login route signs it: who (sub), and until when (exp)."""
    expires = int(time.time() + seconds)
    return jwt.encode({"sub": name, "exp": expires}, key, algorithm="HS256")


def with_token(value: str | None) -> dict:
    """The headers a browser sends once it holds this token in its cookie."""
    return {"Cookie": f"{COOKIE}={value}"} if value is not None else {}


def log_in(server, name: str, password: str = PASSWORD, body: str | None = None):
    """(status, Set-Cookie header or None, answer) of POST /login."""
    sent = (
        body if body is not None else json.dumps({"name": name, "password": password})
    )
    status, headers, text = server.request(
        "POST", "/login", sent, {"Content-Type": "application/json"}
    )
    assert status != 404, (
        "POST /login answered 404: there is no login route yet. Write "
        '`@app.post("/login", blocking=True)`.'
    )
    assert "authentication token" not in text, (
        f"POST /login answered {status} {text}: enable_jwt refuses it before the route "
        'runs. Logging in needs no token: "/login" goes in skip_paths.'
    )
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        raise AssertionError(
            f"POST /login answered {status} with {text[:200]!r}: send JSON, as "
            "Response.json(...) does."
        ) from None
    return status, headers.get("set-cookie"), answer


def token_in(set_cookie: str) -> str:
    name, _, rest = set_cookie.partition("=")
    assert name.strip() == COOKIE, f"The cookie should be {COOKIE}: {set_cookie}"
    return rest.split(";")[0]


@pytest.mark.guide("login.md#log-in")
def test_logging_in_claims_a_free_name_and_hands_over_a_signed_token(server):
    """POST /login with a free name claims it: the answer sets an HttpOnly cookie
    holding a token signed with the app's key, whose sub is the name and whose exp lies
    ahead."""
    status, set_cookie, answer = log_in(server, "Ada")
    assert status == 200, f"Ada's first login answered {status}: {answer}"
    assert set_cookie, (
        "The login answered 200 but set no cookie: hand the token over with "
        'response.set_header("Set-Cookie", accounts.token_cookie(token, request)).'
    )
    flags = set_cookie.lower()
    if "httponly" not in flags or "samesite" not in flags:
        raise CheckFailure(
            f"The cookie is {set_cookie!r}: it needs HttpOnly and SameSite "
            "(accounts.token_cookie(token, request) sets them).",
            read="login.md#cookie",
        )
    try:
        claims = jwt.decode(token_in(set_cookie), SECRET, algorithms=["HS256"])
    except jwt.InvalidTokenError as problem:
        raise AssertionError(
            f"The cookie does not hold a token signed with SECRET ({problem}): sign "
            'it with jwt.encode({"sub": ..., "exp": ...}, SECRET, algorithm="HS256").'
        ) from None
    assert claims.get("sub") == "Ada", (
        f'The token\'s claims are {claims}: "sub" should be the name, "Ada".'
    )
    assert isinstance(claims.get("exp"), int) and claims["exp"] > time.time() + 60, (
        f'The token\'s claims are {claims}: "exp" should be a whole number of '
        "seconds since 1970, in the future (Cello refuses a token without it)."
    )


@pytest.mark.guide("login.md#passwords")
def test_a_wrong_password_or_bad_input_is_refused_and_no_password_is_kept(server):
    """A wrong password gets 401 and no cookie, input that is not a name and a password
    gets 400 saying why, and the password is nowhere in clear: not in the accounts file,
    not in the server's output."""
    assert log_in(server, "Grace")[0] == 200, "Grace's first login was refused."
    accounts_file = server.data / "users.json"
    kept = (
        json.loads(accounts_file.read_text()).get("grace", {})
        if accounts_file.exists()
        else {}
    )
    assert str(kept.get("hash", "")).startswith("$argon2id$"), (
        "After Grace's first login the accounts file should keep her name and an "
        f"Argon2id hash of her password, but it holds {kept or 'nothing for her'}: "
        "check the password with users.log_in(request), which keeps the accounts."
    )
    status, set_cookie, answer = log_in(server, "grace", "not her password")
    assert status == 401 and not set_cookie, (
        f"A wrong password for Grace got {status} and cookie {set_cookie!r}: it "
        "needs 401, and no cookie."
    )
    assert isinstance(answer, dict) and answer.get("error"), (
        f'A refused login should say why in {{"error": ...}}; it answered {answer}.'
    )
    for body in (
        "{not json",
        "[]",
        '{"name": "Eve"}',
        '{"name": "Eve", "password": 1}',
    ):
        status, set_cookie, answer = log_in(server, "", body=body)
        assert status == 400 and not set_cookie, (
            f"POST /login with the body {body!r} answered {status}: bad input gets "
            "400 with the reason (accounts.read_login raises BadMessage)."
        )
    for where, text in [
        ("the accounts file", (server.data / "users.json").read_text()),
        ("the server's output", server.output()),
    ]:
        assert PASSWORD not in text, f"A password appears in clear in {where}."


@pytest.mark.guide("login.md#tokens")
@pytest.mark.parametrize(
    "kind",
    ["missing", "malformed", "forged", "expired"],
)
def test_a_bad_token_is_refused_with_401_and_the_room_does_not_change(server, kind):
    """Without a valid token (none, not a token, signed with another key, or expired),
    the WebSocket upgrade and GET /users answer 401, and the room hears nothing."""
    bad, with_it = {
        "missing": (None, "with no token"),
        "malformed": ("not-a-token", "with a malformed token"),
        "forged": (token("Ada", key=secrets.token_hex(32)), "with a forged token"),
        "expired": (token("Ada", seconds=-60), "with an expired token"),
    }[kind]
    watcher = server.connect(headers=with_token(token("Watcher")))
    try:
        watcher.wait_for_system("joined the chat")
        before = online(server)
        refused = server.refusal(with_token(bad))
        assert refused is not None, (
            f"A WebSocket {with_it} was let into the chat. "
            "app.enable_jwt(JwtConfig(...)) refuses it before the handler runs, "
            "unless its path is in skip_paths."
        )
        assert refused[0] == 401, (
            f"The upgrade {with_it} was refused with {refused[0]}, not 401."
        )
        status, _, body = server.request("GET", "/users", headers=with_token(bad))
        assert status == 401, (
            f"GET /users {with_it} answered {status}: {body[:200]}. Only "
            "the pages and logging in or out may go without a token (skip_paths)."
        )
        news = [m for m in watcher.sync() if not earlier_news(m)]
        assert not news, f"The room heard of the refused connection: {news}"
        assert online(server) == before, "GET /users changed."
    finally:
        watcher.close()


def earlier_news(message: dict) -> bool:
    """A ping, or an earlier check's participant leaving: not about this check."""
    return message.get("type") == "ping" or (
        message.get("type") == "system"
        and str(message.get("message")).endswith(" left the chat")
    )


def online(server) -> list[str]:
    """The names GET /users lists, asked with a valid token."""
    headers = with_token(token("Watcher"))
    status, _, body = server.request("GET", "/users", headers=headers)
    assert status == 200, f"GET /users with a valid token answered {status}: {body}"
    return json.loads(body)["users"]


@pytest.mark.guide("login.md#identity")
def test_the_name_in_the_room_comes_from_the_token(server):
    """A participant whose token says "Ada" joins as Ada, speaks as Ada, and GET /users
    lists Ada."""
    ada = server.connect(headers=with_token(token("Ada")))
    try:
        joined = ada.wait_for_system("joined the chat")
        assert joined["message"] == "Ada joined the chat", (
            f"Ada's token says sub = Ada, yet the room said {joined['message']!r}. "
            'The name comes from ws.request.get_context("jwt_claims")["sub"].'
        )
        ada.say("hello")
        ada.wait_for_chat("Ada", "hello")
        assert "Ada" in online(server)
    finally:
        ada.close()


@pytest.mark.guide("login.md#identity")
def test_set_name_cannot_impersonate_anyone(server):
    """Ada asks to be called Grace: only Ada hears an error, the room hears no rename,
    GET /users still says Ada, and her next message is still signed Ada."""
    ada = server.connect(headers=with_token(token("Ada")))
    watcher = server.connect(headers=with_token(token("Watcher")))
    try:
        ada.wait_for_system("joined the chat")
        watcher.wait_for_system("joined the chat")
        watcher.sync()
        ada.rename("Grace")
        ada.expect_error(after='{"type": "set_name", "name": "Grace"}')
        users = online(server)
        assert "Grace" not in users, (
            f"set_name renamed Ada to Grace (GET /users: {users}): anyone could speak "
            "as anyone. Refuse set_name with a BadMessage."
        )
        renamed = [m for m in watcher.sync() if "Grace" in str(m.get("message", ""))]
        assert not renamed, f"The room heard: {renamed}"
        ada.say("still me")
        watcher.wait_for_chat("Ada", "still me")
    finally:
        ada.close()
        watcher.close()


@pytest.mark.guide("login.md#expiry")
def test_an_open_connection_ends_when_its_token_expires(server):
    """A token that expires while its participant is connected: their next message is
    answered with an error, never reaches the room, and the connection ends.

    The error told with send_to instead of `await ws.asend_text` races leave(), which
    drops the outbox: caught in 100 runs of 100 (python -m workshop.mistakes --repeat
    100 login-expired-told-through-the-outbox).
    """
    short = token("Erin", seconds=2)
    expires = jwt.decode(short, options={"verify_signature": False})["exp"]
    erin = server.connect(headers=with_token(short))
    watcher = server.connect(headers=with_token(token("Watcher")))
    try:
        erin.wait_for_system("joined the chat")
        watcher.wait_for_system("joined the chat")
        while time.time() < expires + 0.05:  # waits for the clock, not for the server
            time.sleep(expires + 0.05 - time.time())
        erin.say("am I still in?")
        try:
            error = erin.expect_error(after="a message sent after the token's exp")
        except AssertionError as waited:
            raise AssertionError(
                f"{waited}\nCello checked exp at the upgrade only: compare "
                'time.time() with claims["exp"] on each message, and send the error '
                "with `await ws.asend_text(...)`: leave() drops what waits in the "
                "outbox."
            ) from None
        assert "expired" in error["message"].lower(), (
            f'After "exp", the error should say the login has expired: {error}'
        )
        watcher.wait_for_system("Erin left the chat")
        heard = [m for m in watcher.unread() if m.get("message") == "am I still in?"]
        assert not heard, "The room heard a message sent after the token expired."
    finally:
        erin.close()
        watcher.close()
    assert "Erin" not in online(server), "GET /users still lists Erin."


@pytest.mark.guide("login.md#log-out")
def test_logging_out_takes_the_token_back(server):
    """POST /logout answers with a Set-Cookie that empties the token's cookie now
    (Max-Age=0), and it needs no token of its own."""
    status, headers, body = server.request("POST", "/logout")
    assert status != 404, "POST /logout answered 404: there is no logout route yet."
    assert status < 400, f"POST /logout answered {status}: {body[:200]}"
    set_cookie = headers.get("set-cookie", "")
    assert set_cookie.startswith(f"{COOKIE}=;") and "max-age=0" in set_cookie.lower(), (
        f"POST /logout should set {accounts_logged_out()}, not {set_cookie!r}."
    )


def accounts_logged_out() -> str:
    return f'"{COOKIE}=; Max-Age=0; ..." (accounts.LOGGED_OUT)'
