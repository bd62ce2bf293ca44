"""A real-time chat on Cello, built one step at a time in the workshop."""

import json
import os
import threading
import time
from pathlib import Path

# Ready-made: accounts, and the cookie that carries a token (login.md#accounts).
import accounts
import jwt
from cello import App, JwtConfig, Response

# Ready-made for a whole room: outboxes, and many open files (room.md#outboxes).
from classroom import Outbox, allow_many_connections
from messages import BadMessage, parse_message

app = App()
SECRET = accounts.load_secret()
users = accounts.Accounts()
# Nothing but the pages and logging in/out without a valid token: the WebSocket's
# upgrade request included, with 401 and before the handler (login.md#tokens).
PUBLIC = ["/", "/login", "/logout"]
app.enable_jwt(JwtConfig(SECRET, cookie_name=accounts.COOKIE), skip_paths=PUBLIC)

# Every connected client: ws_id -> {"ws": ws, "username": str}
clients = {}
# Their messages on the way out: ws_id -> Outbox. A client is in both dicts, or neither.
outboxes = {}
# Handlers run on many threads at once: use `clients` only while holding this lock
# (step2.md#the-client-store).
clients_lock = threading.Lock()
# A ping every 30 s (the checks set less); three unanswered: gone (step7.md#heartbeat).
HEARTBEAT_SECONDS = float(os.environ.get("CHAT_HEARTBEAT_SECONDS", "30"))
SILENCE_LIMIT_SECONDS = max(3 * HEARTBEAT_SECONDS, 0.6)


def add_client(ws_id: int, ws, username: str) -> str:
    """Register a connection under the name its login gave, and return that name."""
    # If they fall too far behind, their outbox gives up on them (room.md#outboxes).
    outbox = Outbox(ws, on_dropped=lambda: leave(ws_id))
    with clients_lock:
        clients[ws_id] = {"ws": ws, "username": username}
        outboxes[ws_id] = outbox
    return username


def remove_client(ws_id: int) -> dict | None:
    """Forget a connection; calling it twice is no error (step2.md#leaving)."""
    with clients_lock:
        return clients.pop(ws_id, None)


def is_connected(ws_id: int) -> bool:
    with clients_lock:
        return ws_id in clients


def leave(ws_id: int) -> None:
    """Take a participant out and tell everybody, once (room.md#leave-once)."""
    client = remove_client(ws_id)
    if client is None:
        return  # their handler and their outbox both call this: only the first goes on
    with clients_lock:
        outbox = outboxes.pop(ws_id)
    outbox.close()
    announce(f"{client['username']} left the chat")


def broadcast(payload: dict) -> None:
    """Send one message to every connected client."""
    text = json.dumps(payload)
    # put() never blocks, so the lock keeps one order for all (room.md#outboxes).
    with clients_lock:
        for outbox in outboxes.values():
            outbox.put(text)


def send_to(ws_id: int, payload: dict) -> None:
    """Queue one message for one client; one that has just left is no error."""
    with clients_lock:
        outbox = outboxes.get(ws_id)
    if outbox is not None:
        outbox.put(json.dumps(payload))


def announce(news: str) -> None:
    broadcast({"type": "system", "message": news})


# async: a waiting participant holds no thread (room.md#async-handler).
@app.websocket("/ws/chat")
async def chat_handler(ws):
    """One participant, from joining to leaving."""
    ws_id = id(ws)
    # What the token says, checked by enable_jwt before we got here (login.md#identity).
    claims = ws.request.get_context("jwt_claims")
    username = add_client(ws_id, ws, claims["sub"])
    announce(f"{username} joined the chat")
    try:
        # None once they closed, or stayed silent for too long (step7.md#heartbeat).
        while (msg := await ws.arecv(timeout=SILENCE_LIMIT_SECONDS)) is not None:
            if not is_connected(ws_id):
                break  # their outbox gave up on them (room.md#outboxes)
            # enable_jwt checked "exp" at the upgrade only (login.md#expiry).
            if time.time() >= claims["exp"]:
                await ws.asend_text(accounts.EXPIRED)  # now: leave() drops the outbox
                break
            try:
                data = parse_message(msg.content)  # (step3.md#read-the-message)
                if data["type"] == "pong":
                    continue  # its only job was to arrive
                if data["type"] == "set_name":
                    raise BadMessage(f"You are {username}: names come from logins.")
                else:  # {"type": "chat", "message": ...} and who said it
                    broadcast(data | {"username": username})
            except BadMessage as problem:  # only its sender hears of it
                send_to(ws_id, {"type": "error", "message": str(problem)})
    finally:
        leave(ws_id)


# The page in its own file, read on each request (step5.md#serve-the-page).
CHAT_PAGE = Path(__file__).with_name("index.html")


@app.get("/")
def index(request):
    """Serve the chat client."""
    return Response.html(CHAT_PAGE.read_text(encoding="utf-8"))


# The form, ready-made in login.html: one more page anybody may see.
app.get("/login")(accounts.login_page)


# blocking: a hash takes 0.1 s or more, off the server's own thread (login.md#log-in).
@app.post("/login", blocking=True)
def log_in(request):
    try:
        name = users.log_in(request)  # the account's name, if the password is right
    except accounts.Refused as refusal:  # 400: not a name and password; 401: wrong
        return Response.json({"error": str(refusal)}, status=refusal.status)
    expires = int(time.time()) + accounts.TOKEN_SECONDS
    token = jwt.encode({"sub": name, "exp": expires}, SECRET, algorithm="HS256")
    response = Response.json({"name": name})
    response.set_header("Set-Cookie", accounts.token_cookie(token, request))
    return response


@app.post("/logout")
def log_out(request):
    response = Response.redirect("/login")
    response.set_header("Set-Cookie", accounts.LOGGED_OUT)
    return response


@app.get("/users")
def online_users(request):
    """Return currently connected usernames."""
    with clients_lock:
        users = [client["username"] for client in clients.values()]
    return {"users": users, "count": len(users)}


def heartbeat_loop():
    """Ping everybody now and then: a vanished laptop never closes its connection."""
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        broadcast({"type": "ping"})


if __name__ == "__main__":
    # Here, not at import: importing app.py starts nothing (step7.md#heartbeat).
    threading.Thread(target=heartbeat_loop, name="heartbeat", daemon=True).start()
    allow_many_connections()  # each participant is an open file (room.md#open-files)
    # One process: the room lives in its memory (step7.md#run-the-application).
    app.run(host="127.0.0.1", port=8000, workers=1)
