"""A real-time chat on Cello, built one step at a time in the workshop."""

import itertools
import json
import os
import threading
import time
from pathlib import Path

from cello import App, Response, ThreadPoolConfig

# TODO(room), part 2 of 2: classroom.py (next to this file) is handed out ready-made.
#   from classroom import Outbox, allow_many_connections
# END TODO
from messages import BadMessage, parse_message

app = App()

# Every connected client: ws_id -> {"ws": ws, "username": str}
clients = {}
# TODO(room), part 2 of 2: every participant's messages on the way out.
#   outboxes = {}   # ws_id -> Outbox; a client is in both dicts, or in neither
# END TODO
# Handlers run on many threads at once: use `clients` only while holding this lock
# (step2.md#the-client-store).
clients_lock = threading.Lock()
# A counter, not the tutorial's id(ws) % 10000 (step2.md#distinct-default-names).
user_numbers = itertools.count(1)
# Each participant holds a pool thread while they stay (step7.md#a-whole-room).
ROOM_SIZE = 500
# A ping every 30 s (the checks set less); three unanswered: gone (step7.md#heartbeat).
HEARTBEAT_SECONDS = float(os.environ.get("CHAT_HEARTBEAT_SECONDS", "30"))
SILENCE_LIMIT_SECONDS = max(3 * HEARTBEAT_SECONDS, 0.6)


def name_taken(name: str) -> bool:
    """Whether a connected client uses this name, ignoring case. Hold clients_lock."""
    return any(c["username"].casefold() == name.casefold() for c in clients.values())


def add_client(ws_id: int, ws) -> str:
    """Register a connection under a default name nobody uses, and return that name."""
    # TODO(room), part 2 of 2: give them an outbox, stored beside them under the lock:
    #   outbox = Outbox(ws, on_dropped=lambda: leave(ws_id))   (before the lock)
    #   outboxes[ws_id] = outbox                               (under it)
    # END TODO
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


# TODO(room), part 2 of 2: remove_client returns what it removed (clients.pop's
# result: the client's dict, or None), for leave() below.
#
#   def is_connected(ws_id) -> bool: whether ws_id is in clients, under the lock.
#
#   def leave(ws_id) -> None: take a participant out and tell everybody, once. Their
#   handler's `finally` and their outbox (when they stop reading) both call it:
#       client = remove_client(ws_id); if it is None, return (someone else did it)
#       under the lock: outbox = outboxes.pop(ws_id); then outbox.close() and
#       announce(f"{client['username']} left the chat")
# END TODO
def remove_client(ws_id: int) -> None:
    """Forget a connection; calling it twice is no error (step2.md#leaving)."""
    with clients_lock:
        clients.pop(ws_id, None)


# TODO(room), part 2 of 2: send through the outboxes; nothing here blocks any more.
#   broadcast: text = json.dumps(payload) once, then under the lock, for every
#     outbox in outboxes.values(): outbox.put(text). Holding the lock keeps one order
#     of messages for everybody, and put() never blocks.
#   send_to(ws_id, payload): under the lock, outbox = outboxes.get(ws_id); outside it,
#     if there is one, outbox.put(json.dumps(payload)). The handler passes ws_id now.
# END TODO
def broadcast(payload: dict) -> None:
    """Send one message to every connected client."""
    # A copy taken under the lock, sent outside it (step4.md#broadcast).
    with clients_lock:
        sockets = [client["ws"] for client in clients.values()]
    for ws in sockets:
        send_to(ws, payload)


def send_to(ws, payload: dict) -> None:
    """Send one message to one client; one that has just left is no error."""
    try:
        ws.send_text(json.dumps(payload))
    except ConnectionError:
        pass  # its own handler sees the close and cleans up


def announce(news: str) -> None:
    broadcast({"type": "system", "message": news})


# TODO(room), part 1 of 2: make the handler `async def`, and wait for each message with
# `await ws.arecv(timeout=SILENCE_LIMIT_SECONDS)`: a waiting coroutine holds no
# thread, so the room is no longer capped by the pool (delete ROOM_SIZE, its comment,
# ThreadPoolConfig and the set_threadpool line). A coroutine may not call
# ws.send_text: part 2's outboxes send for it.
#
# TODO(room), part 2 of 2: in the loop, first `if not is_connected(ws_id): break`
# (their outbox gave up on them); send errors with send_to(ws_id, ...); and in
# `finally`, leave(ws_id) alone does the removing and the announcing.
# END TODO
@app.websocket("/ws/chat")
def chat_handler(ws):
    """One participant, from joining to leaving."""
    ws_id = id(ws)
    username = add_client(ws_id, ws)
    announce(f"{username} joined the chat")
    try:
        # None once they closed, or stayed silent for too long (step7.md#heartbeat).
        while (msg := ws.recv(timeout=SILENCE_LIMIT_SECONDS)) is not None:
            try:
                data = parse_message(msg.content)  # (step3.md#read-the-message)
                if data["type"] == "pong":
                    continue  # its only job was to arrive
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


# The page in its own file, read on each request (step5.md#serve-the-page).
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
    """Ping everybody now and then: a vanished laptop never closes its connection."""
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        broadcast({"type": "ping"})


if __name__ == "__main__":
    # Here, not at import: importing app.py starts nothing (step7.md#heartbeat).
    threading.Thread(target=heartbeat_loop, name="heartbeat", daemon=True).start()
    app.set_threadpool(ThreadPoolConfig(size=ROOM_SIZE))
    # TODO(room), part 2 of 2: each participant is an open file, and macOS allows a
    # process 256: call allow_many_connections() here.
    # END TODO
    # One process: the room lives in its memory (step7.md#run-the-application).
    app.run(host="127.0.0.1", port=8000, workers=1)
