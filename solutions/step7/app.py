"""A real-time chat on Cello, built one step at a time in the workshop."""

import itertools
import json
import os
import threading
import time
from pathlib import Path

from cello import App, Response

# What a whole class needs, handed out ready-made in classroom.py next to this file: an outbox per participant
# (so that one who stops reading cannot freeze the room), a rate limit, and room for many open connections.
from classroom import Outbox, RateLimit, allow_many_connections

app = App()

# The heartbeat's interval: 30 s unless the environment says otherwise (the checks use a fraction of a second).
HEARTBEAT_SECONDS = float(os.environ.get("CHAT_HEARTBEAT_SECONDS", "30"))
# The page answers every ping with {"type": "pong"}. Silent for three intervals means gone (a closed laptop,
# a phone out of Wi-Fi): nothing else would tell, as such a connection never closes. At least a second, so
# that a busy machine's hiccup never passes for a departure.
SILENCE_LIMIT_SECONDS = max(3 * HEARTBEAT_SECONDS, 1.0)
# Per participant: 10 messages at once, then 5 a second. More is a script or a stuck key, not a person.
MESSAGES_PER_SECOND = float(os.environ.get("CHAT_MESSAGES_PER_SECOND", "5"))
MESSAGE_BURST = 10

# Every connected client: ws_id -> {"ws": ws, "username": str}
clients = {}
# Their messages on the way out: ws_id -> Outbox (classroom.py). A client is in both dicts, or in neither.
outboxes = {}
# Handlers, the heartbeat and the delivery threads all touch `clients` and `outboxes`, so every read or write
# of them holds this lock (the tutorial has none, and its room breaks when people join together).
clients_lock = threading.Lock()
# Default names come from a counter, not the tutorial's f"User-{id(ws) % 10000}": the addresses of
# live objects share their last digits, and 60 connections got only 42 distinct names.
user_numbers = itertools.count(1)


def name_taken(name: str) -> bool:
    """Whether a connected client uses this name, ignoring case. Call it with clients_lock held."""
    return any(client["username"].casefold() == name.casefold() for client in clients.values())


def add_client(ws_id: int, ws) -> str:
    """Register a new connection under a default name nobody uses, and return that name."""
    # If this participant falls too far behind (they stopped reading), their outbox gives up on them.
    outbox = Outbox(ws, on_dropped=lambda: leave(ws_id))
    with clients_lock:
        username = f"User-{next(user_numbers)}"
        while name_taken(username):  # someone may have chosen "User-7" with set_name
            username = f"User-{next(user_numbers)}"
        clients[ws_id] = {"ws": ws, "username": username}
        outboxes[ws_id] = outbox
    return username


def remove_client(ws_id: int) -> dict | None:
    """Forget a connection and return what was known of it, or None if it was already gone: safe to call twice
    (the tutorial's `del clients[ws_id]` raised KeyError)."""
    with clients_lock:
        return clients.pop(ws_id, None)


def is_connected(ws_id: int) -> bool:
    with clients_lock:
        return ws_id in clients


def leave(ws_id: int) -> None:
    """Take a participant out of the room and tell everybody, once: their handler ends, and their outbox may
    give up on them, and both call this. Only the call that removes them goes on."""
    client = remove_client(ws_id)
    if client is None:
        return
    with clients_lock:
        outbox = outboxes.pop(ws_id)
    outbox.close()
    broadcast({"type": "system", "message": f"{client['username']} left the chat"})


MAX_NAME_LENGTH = 32
MAX_MESSAGE_LENGTH = 2000
# Longer frames are refused before json.loads spends time on them. 2,000 characters still fit when a
# client escapes every one as a \uXXXX\uXXXX pair (12 characters each).
MAX_FRAME_LENGTH = 25_000


class BadMessage(ValueError):
    """Input the chat refuses: the sender gets the reason back, and the connection stays open."""


def parse_message(content) -> dict:
    """One incoming frame as {"type": "chat", "message": ...} or {"type": "set_name", "name": ...}."""
    if not isinstance(content, str):
        raise BadMessage("Binary frames are not supported: send text, or JSON such as {\"type\": \"chat\", \"message\": \"hi\"}.")
    if len(content) > MAX_FRAME_LENGTH:
        raise BadMessage(f"That message is {len(content):,} characters long; the limit is {MAX_MESSAGE_LENGTH:,}.")
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        data = {"type": "chat", "message": content}  # plain text is a chat message, as in the tutorial
    except RecursionError:
        raise BadMessage("That JSON is nested too deeply.") from None
    if not isinstance(data, dict):
        raise BadMessage(
            f"Expected a JSON object such as {{\"type\": \"chat\", \"message\": \"hi\"}}, got {json_kind(data)}."
        )
    kind = data.get("type")
    if kind == "pong":
        return {"type": "pong"}  # the page's answer to the heartbeat
    if kind == "chat":
        return {"type": "chat", "message": clean_chat_text(data.get("message"))}
    if kind == "set_name":
        return {"type": "set_name", "name": clean_name(data.get("name"))}
    raise BadMessage(f'Unknown message type {json.dumps(kind)}: use "chat" or "set_name".')


def json_kind(value) -> str:
    """What a learner typed, in JSON's words: "a JSON array", not Python's "list"."""
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else f"a JSON {kinds[type(value)]}"


def clean_chat_text(message) -> str:
    if not isinstance(message, str):
        raise BadMessage('A chat message needs "message": a string.')
    if not message.strip():
        raise BadMessage("Empty messages are not sent.")
    if len(message) > MAX_MESSAGE_LENGTH:
        raise BadMessage(f"That message is {len(message):,} characters long; the limit is {MAX_MESSAGE_LENGTH:,}.")
    return message


def clean_name(name) -> str:
    if not isinstance(name, str):
        raise BadMessage('set_name needs "name": a string, such as {"type": "set_name", "name": "Alice"}.')
    name = name.strip()
    if not name:
        raise BadMessage("A name cannot be empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise BadMessage(f"A name can be at most {MAX_NAME_LENGTH} characters long.")
    if not name.isprintable():
        raise BadMessage("A name cannot contain line breaks or control characters.")
    return name


def rename(ws_id: int, new_name: str) -> str:
    """Give a client a new name and return its old one; BadMessage if someone else has the name."""
    with clients_lock:
        client = clients[ws_id]
        old_name = client["username"]
        if new_name.casefold() != old_name.casefold() and name_taken(new_name):
            raise BadMessage(f"The name {new_name} is taken: choose another.")
        client["username"] = new_name
    return old_name


def send_to(ws_id: int, payload: dict) -> None:
    """Send one message to one client; a client that has just left is no error."""
    with clients_lock:
        outbox = outboxes.get(ws_id)
    if outbox is not None:
        outbox.put(json.dumps(payload))


def broadcast(payload: dict) -> None:
    """Send one message to every connected client."""
    text = json.dumps(payload)
    # put() only queues the message (the delivery threads send it), so it never blocks and the loop can hold
    # the lock: everybody gets the room's messages in the same order, and a slow reader delays nobody.
    with clients_lock:
        for outbox in outboxes.values():
            outbox.put(text)


# `async def`: the handler waits with `await ws.arecv()`, which holds no thread. A `def` handler holds one of
# Cello's 64 pool threads for as long as its participant stays, so the 65th participant would connect and
# then hear nothing, silently. (A coroutine may not call ws.send_text; the outboxes send for it.)
@app.websocket("/ws/chat")
async def chat_handler(ws):
    """One participant, from joining to leaving."""
    ws_id = id(ws)
    username = add_client(ws_id, ws)
    broadcast({"type": "system", "message": f"{username} joined the chat"})
    limit = RateLimit(per_second=MESSAGES_PER_SECOND, burst=MESSAGE_BURST)
    try:
        # None once the participant closed the connection, or when they said nothing at all, not even a
        # pong, for SILENCE_LIMIT_SECONDS: either way they are gone.
        while (msg := await ws.arecv(timeout=SILENCE_LIMIT_SECONDS)) is not None:
            if not is_connected(ws_id):
                break  # their outbox gave up on them (they stopped reading): what they send no longer counts
            try:
                # msg.content, not the tutorial's msg.text: that is the WebSocketMessage.text constructor,
                # and json.loads(msg.text) raised TypeError and dropped the sender on their first message.
                data = parse_message(msg.content)
                if data["type"] == "pong":
                    continue  # its only job was to arrive: the participant is still there
                if not limit.allow():
                    raise BadMessage(
                        f"Slow down: at most {MESSAGES_PER_SECOND:g} messages a second. That one was not sent."
                    )
                if data["type"] == "set_name":
                    old_name = rename(ws_id, data["name"])
                    username = data["name"]
                    broadcast({"type": "system", "message": f"{old_name} is now known as {username}"})
                else:
                    broadcast({"type": "chat", "username": username, "message": data["message"]})
            except BadMessage as problem:
                # Only the sender hears about bad input, and its connection stays open.
                send_to(ws_id, {"type": "error", "message": str(problem)})
    finally:
        leave(ws_id)


# The page lives in its own file, not in a Python string as in the tutorial: your editor highlights it,
# and it is read on every request, so a browser reload shows your edits without restarting the server.
CHAT_PAGE = Path(__file__).with_name("index.html")


@app.get("/")
def index(request):
    """Serve the chat client."""
    return Response.html(CHAT_PAGE.read_text(encoding="utf-8"))


@app.get("/users")
def online_users(request):
    """Return currently connected usernames."""
    with clients_lock:
        users = [client["username"] for client in clients.values()]
    return {"users": users, "count": len(users)}


def heartbeat_loop():
    """Ping every client now and then: browsers and Cello never ping, so a quiet socket is never checked."""
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        # Each participant's handler counts the page's pong; one that stays silent is taken out of the room.
        broadcast({"type": "ping"})


if __name__ == "__main__":
    # Started here, not at import as in the tutorial: importing app.py (the checks do) starts nothing.
    threading.Thread(target=heartbeat_loop, name="heartbeat", daemon=True).start()
    allow_many_connections()  # each participant is an open file: macOS allows a process 256 unless it asks
    # workers=1: the chat room lives in this process's memory; `--env production` would otherwise fork
    # one process per CPU and split the room into islands that never hear each other. Cello's banner then
    # says "Workers: 1", whatever --workers or --env production asked for.
    app.run(host="127.0.0.1", port=8000, workers=1)
