"""A real-time chat on Cello, built one step at a time in the workshop."""

import itertools
import threading

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


@app.get("/")
def index(request):
    return Response.text("The Cello chat server is running. The chat page arrives in step 5.\n")
