"""A real-time chat on Cello, built one step at a time in the workshop."""

import itertools
import json
import threading

from cello import App, Response
from messages import BadMessage, parse_message

app = App()

# Every connected client: ws_id -> {"ws": ws, "username": str}
clients = {}
# Handlers run on many threads at once: use `clients` only while holding this lock
# (step2.md#the-client-store).
clients_lock = threading.Lock()
# A counter, not the tutorial's id(ws) % 10000 (step2.md#distinct-default-names).
user_numbers = itertools.count(1)


def name_taken(name: str) -> bool:
    """Whether a connected client uses this name, ignoring case. Hold clients_lock."""
    return any(c["username"].casefold() == name.casefold() for c in clients.values())


def add_client(ws_id: int, ws) -> str:
    """Register a connection under a default name nobody uses, and return that name."""
    with clients_lock:
        username = f"User-{next(user_numbers)}"
        while name_taken(username):  # someone may have chosen "User-7" already
            username = f"User-{next(user_numbers)}"
        clients[ws_id] = {"ws": ws, "username": username}
    return username


class NameTaken(ValueError):
    """Someone else uses that name."""


def rename(ws_id: int, new_name: str) -> str:
    """Give a client a new name and return the old one; NameTaken if someone has it."""
    with clients_lock:
        client = clients[ws_id]
        old_name = client["username"]
        if new_name.casefold() != old_name.casefold() and name_taken(new_name):
            raise NameTaken(f"The name {new_name} is taken: choose another.")
        client["username"] = new_name
    return old_name


def remove_client(ws_id: int) -> None:
    """Forget a connection; calling it twice is no error (step2.md#leaving)."""
    with clients_lock:
        clients.pop(ws_id, None)


# Step 4 writes broadcast(); until then it echoes (step3.md#a-bridge-to-step-4).
current_sender = threading.local()


def broadcast(payload: dict) -> None:
    send_to(current_sender.ws, payload)


def send_to(ws, payload: dict) -> None:
    """Send one message to one client; one that has just left is no error."""
    try:
        ws.send_text(json.dumps(payload))
    except ConnectionError:
        pass  # its own handler sees the close and cleans up


def announce(news: str) -> None:
    broadcast({"type": "system", "message": news})


@app.websocket("/ws/chat")
def chat_handler(ws):
    """One participant, from joining to leaving."""
    current_sender.ws = ws
    ws_id = id(ws)
    username = add_client(ws_id, ws)
    announce(f"{username} joined the chat")
    try:
        while (msg := ws.recv()) is not None:
            try:
                data = parse_message(msg.content)  # (step3.md#read-the-message)
                if data["type"] == "set_name":
                    old_name = rename(ws_id, data["name"])
                    username = data["name"]
                    announce(f"{old_name} is now known as {username}")
                else:  # {"type": "chat", "message": ...} and who said it
                    broadcast(data | {"username": username})
            except (BadMessage, NameTaken) as problem:  # only its sender hears of it
                send_to(ws, {"type": "error", "message": str(problem)})
    finally:
        remove_client(ws_id)
        announce(f"{username} left the chat")


@app.get("/")
def index(request):
    return Response.text("The chat server is running. The page arrives in step 5.\n")
