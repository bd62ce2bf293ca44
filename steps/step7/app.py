"""A real-time chat on Cello, built one step at a time in the workshop."""

import itertools
import json
import threading
# TODO(step 7): import os and time here, and below, after the cello import, the ready-made machinery of
# classroom.py (next to this file; read its docstring):
#       from classroom import Outbox, RateLimit, allow_many_connections
# END TODO
from pathlib import Path

from cello import App, Response

app = App()

# TODO(step 7): the settings of a room for a whole class.
#
#   HEARTBEAT_SECONDS = float(os.environ.get("CHAT_HEARTBEAT_SECONDS", "30"))   (the checks use 0.2)
#   SILENCE_LIMIT_SECONDS = max(3 * HEARTBEAT_SECONDS, 1.0)
#       The page will answer every ping with a pong: someone silent for three intervals is gone (a closed
#       laptop never closes its connection). At least a second, so that a busy machine's hiccup is no departure.
#   MESSAGES_PER_SECOND = float(os.environ.get("CHAT_MESSAGES_PER_SECOND", "5"))
#   MESSAGE_BURST = 10
#       Per participant: 10 messages at once, then 5 a second. More is a script or a stuck key, not a person.
# END TODO

# Every connected client: ws_id -> {"ws": ws, "username": str}
clients = {}
# Cello runs WebSocket handlers on several threads at once, so every read or write of `clients`
# holds this lock (the tutorial has none, and its room breaks when people join together).
clients_lock = threading.Lock()
# Default names come from a counter, not the tutorial's f"User-{id(ws) % 10000}": the addresses of
# live objects share their last digits, and 60 connections got only 42 distinct names.
user_numbers = itertools.count(1)


def name_taken(name: str) -> bool:
    """Whether a connected client uses this name, ignoring case. Call it with clients_lock held."""
    return any(client["username"].casefold() == name.casefold() for client in clients.values())


# TODO(step 7): each client gets an outbox.
#
#   Next to `clients`:  outboxes = {}   (ws_id -> Outbox), guarded by clients_lock too.
#   In add_client, before taking the lock:
#       outbox = Outbox(ws, on_dropped=lambda: leave(ws_id))
#   and, under the lock, outboxes[ws_id] = outbox. An Outbox queues its client's messages and delivery
#   threads send them, so one participant who stops reading never holds up the others. If they fall too far
#   behind, it closes their connection and calls on_dropped: leave() below announces them as left.
#
#   remove_client returns what it removed: `return clients.pop(ws_id, None)` (None if already gone).
#
#   Then two new functions:
#       def is_connected(ws_id) -> bool: whether ws_id is still in clients (under the lock).
#       def leave(ws_id): client = remove_client(ws_id); if it was still there, pop its outbox (under the lock),
#           close it, and broadcast "<its current username> left the chat". Both the handler's `finally` and
#           on_dropped call leave(): only the call that removed the client goes on, so it is announced once.
# END TODO
def add_client(ws_id: int, ws) -> str:
    """Register a new connection under a default name nobody uses, and return that name."""
    with clients_lock:
        username = f"User-{next(user_numbers)}"
        while name_taken(username):  # someone may have chosen "User-7" with set_name
            username = f"User-{next(user_numbers)}"
        clients[ws_id] = {"ws": ws, "username": username}
    return username


def remove_client(ws_id: int) -> None:
    """Forget a connection. Safe to call twice (the tutorial's `del clients[ws_id]` raised KeyError)."""
    with clients_lock:
        clients.pop(ws_id, None)


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
    # TODO(step 7): accept {"type": "pong"}, the page's answer to a ping: return {"type": "pong"}.
    # END TODO
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


# TODO(step 7): send through the outboxes, never with ws.send_text (which blocks behind a stalled reader).
#
#   send_to(ws_id, payload): get outboxes.get(ws_id) under the lock, then outbox.put(json.dumps(payload)).
#   broadcast(payload): under the lock, put the text into every outbox. put() never blocks, so the loop may
#   hold the lock, and then everybody gets the room's messages in the same order.
# END TODO
def send_to(ws, payload: dict) -> None:
    """Send one message to one client; a client that has just left is no error."""
    try:
        ws.send_text(json.dumps(payload))
    except ConnectionError:
        pass  # its own handler is about to see the close and clean up


def broadcast(payload: dict) -> None:
    """Send one message to every connected client."""
    text = json.dumps(payload)
    # Copy the list under the lock and send outside it: the tutorial's loop over the live dict died with
    # "dictionary changed size during iteration" whenever someone joined or left during a broadcast.
    with clients_lock:
        sockets = [client["ws"] for client in clients.values()]
    for ws in sockets:
        try:
            ws.send_text(text)
        except ConnectionError:
            # That client is leaving: its own handler removes it and announces it. (The tutorial removed
            # it here too, so the handler's `del clients[ws_id]` raised KeyError and "left" was never sent.)
            pass


# TODO(step 7): a handler for a whole room.
#
#   `async def chat_handler(ws)`, waiting with `await ws.arecv(timeout=SILENCE_LIMIT_SECONDS)` instead of
#   ws.recv(): a `def` handler holds one of Cello's 64 pool threads for as long as its participant stays, so
#   the 65th would connect and hear nothing. A coroutine may not call ws.send_text: the outboxes send for it.
#   arecv returns None when the participant closed the connection, or said nothing for the silence limit.
#
#   Before the loop:  limit = RateLimit(per_second=MESSAGES_PER_SECOND, burst=MESSAGE_BURST)
#   In the loop, first `if not is_connected(ws_id): break` (their outbox gave up on them); after
#   parse_message, `continue` on a pong; then, if not limit.allow(), raise BadMessage("Slow down: ...").
#   send_to(ws_id, ...) instead of send_to(ws, ...), and `finally: leave(ws_id)`.
# END TODO
@app.websocket("/ws/chat")
def chat_handler(ws):
    """One participant, from joining to leaving."""
    ws_id = id(ws)
    username = add_client(ws_id, ws)
    broadcast({"type": "system", "message": f"{username} joined the chat"})
    try:
        while (msg := ws.recv()) is not None:
            try:
                # msg.content, not the tutorial's msg.text: that is the WebSocketMessage.text constructor,
                # and json.loads(msg.text) raised TypeError and dropped the sender on their first message.
                data = parse_message(msg.content)
                if data["type"] == "set_name":
                    old_name = rename(ws_id, data["name"])
                    username = data["name"]
                    broadcast({"type": "system", "message": f"{old_name} is now known as {username}"})
                else:
                    broadcast({"type": "chat", "username": username, "message": data["message"]})
            except BadMessage as problem:
                # Only the sender hears about bad input, and its connection stays open.
                send_to(ws, {"type": "error", "message": str(problem)})
    finally:
        remove_client(ws_id)
        broadcast({"type": "system", "message": f"{username} left the chat"})


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


# TODO(step 7): the heartbeat, and running the app with `python app.py`.
#
#   def heartbeat_loop():
#       Every HEARTBEAT_SECONDS, broadcast({"type": "ping"}). Browsers and Cello never ping, so without it a
#       quiet connection is never checked; with it, a page that answers no ping is soon taken out of the room.
#
#   if __name__ == "__main__":
#       Start heartbeat_loop on a daemon thread here (not at import time, as the tutorial does: then merely
#       importing app.py would start it), call allow_many_connections(), then
#       app.run(host="127.0.0.1", port=8000, workers=1)
#       workers=1 keeps the room in one process: `--env production` would fork one per CPU and split it.
#
# Try it:       python steps/step7/app.py --port 8000     (or make step 7)
# Check it:     pytest steps/step7          Guide: docs/step7.md
# END TODO
