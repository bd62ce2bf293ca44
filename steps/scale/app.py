"""A real-time chat on Cello, built one step at a time in the workshop."""

import itertools
import json
import os
import threading
import time
from pathlib import Path

# TODO(scale), idea 1 of 3: broker.py, next to this file, is handed out ready-made
# (read its docstring first). Import its Broker:
#   from broker import Broker
# END TODO
from cello import App, Response

# Ready-made for a whole room: outboxes, and many open files (room.md#outboxes).
from classroom import Outbox, allow_many_connections
from messages import BadMessage, parse_message

app = App()

# Every connected client: ws_id -> {"ws": ws, "username": str}
clients = {}
# Their messages on the way out: ws_id -> Outbox. A client is in both dicts, or neither.
outboxes = {}
# Handlers run on many threads at once: use `clients` only while holding this lock
# (step2.md#the-client-store).
clients_lock = threading.Lock()
# TODO(scale), idea 2 of 3: default names take their number from the broker now,
# unique in the whole room (broker.next_number()): delete this counter, and
# `import itertools` at the top.
# END TODO
# A counter, not the tutorial's id(ws) % 10000 (step2.md#distinct-default-names).
user_numbers = itertools.count(1)
# A ping every 30 s (the checks set less); three unanswered: gone (step7.md#heartbeat).
HEARTBEAT_SECONDS = float(os.environ.get("CHAT_HEARTBEAT_SECONDS", "30"))
SILENCE_LIMIT_SECONDS = max(3 * HEARTBEAT_SECONDS, 0.6)
# TODO(scale), idea 1 of 3: one broker per process, made at import (it starts
# nothing yet), talking to the Redis that every process of the room shares:
#   REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
#   broker = Broker(REDIS_URL, silence_limit=SILENCE_LIMIT_SECONDS)
# END TODO


def name_taken(name: str) -> bool:
    """Whether a connected client uses this name, ignoring case. Hold clients_lock."""
    return any(c["username"].casefold() == name.casefold() for c in clients.values())


def add_client(ws_id: int, ws) -> str:
    """Register a connection under a default name nobody uses, and return that name."""
    # If they fall too far behind, their outbox gives up on them (room.md#outboxes).
    outbox = Outbox(ws, on_dropped=lambda: leave(ws_id))
    # TODO(scale), idea 2 of 3: a name free here (name_taken) must also be free in
    # the whole room: take numbers from broker.next_number(), and loop
    #   while name_taken(username) or not broker.claim(username):
    # END TODO
    with clients_lock:
        username = f"User-{next(user_numbers)}"
        while name_taken(username):  # someone may have chosen "User-7" already
            username = f"User-{next(user_numbers)}"
        clients[ws_id] = {"ws": ws, "username": username}
        outboxes[ws_id] = outbox
    return username


class NameTaken(ValueError):
    """Someone else uses that name."""


def rename(ws_id: int, new_name: str) -> str:
    """Give a client a new name and return the old one; NameTaken if someone has it."""
    with clients_lock:
        client = clients[ws_id]
        old_name = client["username"]
        # TODO(scale), idea 2 of 3: free here is not enough. Keep the test above as
        # `taken = ...`, and refuse the name if `taken or not broker.claim(new_name,
        # replacing=old_name)`: the claim is room-wide and frees the old name.
        # END TODO
        if new_name.casefold() != old_name.casefold() and name_taken(new_name):
            raise NameTaken(f"The name {new_name} is taken: choose another.")
        client["username"] = new_name
    return old_name


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
    # TODO(scale), idea 2 of 3: their name is free again, in the whole room:
    #   broker.release(client["username"])
    # END TODO
    announce(f"{client['username']} left the chat")


# TODO(scale), idea 1 of 3: every process hears every message. broadcast(payload)
# now only publishes: broker.publish(json.dumps(payload)). The loop over the outboxes
# moves into a new function, deliver(text: str), which the broker calls for every
# message of the room, this process's own included, in the order Redis sent them.
# END TODO
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
    username = add_client(ws_id, ws)
    announce(f"{username} joined the chat")
    try:
        # None once they closed, or stayed silent for too long (step7.md#heartbeat).
        while (msg := await ws.arecv(timeout=SILENCE_LIMIT_SECONDS)) is not None:
            if not is_connected(ws_id):
                break  # their outbox gave up on them (room.md#outboxes)
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
                send_to(ws_id, {"type": "error", "message": str(problem)})
    finally:
        leave(ws_id)


# The page in its own file, read on each request (step5.md#serve-the-page).
CHAT_PAGE = Path(__file__).with_name("index.html")


@app.get("/")
def index(request):
    """Serve the chat client."""
    return Response.html(CHAT_PAGE.read_text(encoding="utf-8"))


@app.get("/users")
def online_users(request):
    # TODO(scale), idea 2 of 3: the whole room is in Redis: return broker.users().
    # END TODO
    """Return currently connected usernames."""
    with clients_lock:
        users = [client["username"] for client in clients.values()]
    return {"users": users, "count": len(users)}


def heartbeat_loop():
    """Ping everybody now and then: a vanished laptop never closes its connection."""
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        # TODO(scale), idea 1 of 3: each process pings its own participants only:
        # deliver(json.dumps({"type": "ping"})) instead of broadcast.
        # END TODO
        broadcast({"type": "ping"})


# TODO(scale), idea 3 of 3: start each process's threads after the fork. With
# --workers N, Cello forks N processes inside app.run(), and a thread started before
# it is in none of them. Move the heartbeat's thread into
#   @app.on_event("startup")
#   def start_this_process(): broker.start(deliver), then the heartbeat's thread
# and add @app.on_event("shutdown") def stop_this_process(): broker.stop(). Then drop
# `workers=1` from app.run: the room no longer lives in one process's memory.
# END TODO
if __name__ == "__main__":
    # Here, not at import: importing app.py starts nothing (step7.md#heartbeat).
    threading.Thread(target=heartbeat_loop, name="heartbeat", daemon=True).start()
    allow_many_connections()  # each participant is an open file (room.md#open-files)
    # One process: the room lives in its memory (step7.md#run-the-application).
    app.run(host="127.0.0.1", port=8000, workers=1)
