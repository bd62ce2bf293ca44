"""A real-time chat on Cello, built one step at a time in the workshop."""

import itertools
import json
import threading
from pathlib import Path

from cello import App, Response

app = App()

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
