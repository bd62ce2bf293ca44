"""A real-time chat on Cello, built one step at a time in the workshop."""

import itertools
import json
import os
import threading
import time
from pathlib import Path

from cello import App, Blueprint, Response, SseEvent

# Ready-made for a whole room: outboxes, and many open files (room.md#outboxes).
from classroom import Outbox, allow_many_connections
from messages import BadMessage, parse_message

# Ready-made: the room's news, kept for pages that ask for it (live.md#sse).
from sse import RETRY_MS, WAIT_SECONDS, EventLog

app = App()
# The live board and its feed, under /live (live.md#blueprint).
live = Blueprint("/live")
# Who joined, left or took a new name, for the pages following GET /live/events.
room_events = EventLog()

# Every connected client: ws_id -> {"ws": ws, "username": str}
clients = {}
# Their messages on the way out: ws_id -> Outbox. A client is in both dicts, or neither.
outboxes = {}
# Handlers run on many threads at once: use `clients` only while holding this lock
# (step2.md#the-client-store).
clients_lock = threading.Lock()
# A counter, not the tutorial's id(ws) % 10000 (step2.md#distinct-default-names).
user_numbers = itertools.count(1)
# A ping every 30 s (the checks set less); three unanswered: gone (step7.md#heartbeat).
HEARTBEAT_SECONDS = float(os.environ.get("CHAT_HEARTBEAT_SECONDS", "30"))
SILENCE_LIMIT_SECONDS = max(3 * HEARTBEAT_SECONDS, 0.6)


def name_taken(name: str) -> bool:
    """Whether a connected client uses this name, ignoring case. Hold clients_lock."""
    return any(c["username"].casefold() == name.casefold() for c in clients.values())


def add_client(ws_id: int, ws) -> str:
    """Register a connection under a default name nobody uses, and return that name."""
    # If they fall too far behind, their outbox gives up on them (room.md#outboxes).
    outbox = Outbox(ws, on_dropped=lambda: leave(ws_id))
    with clients_lock:
        username = f"User-{next(user_numbers)}"
        while name_taken(username):  # someone may have chosen "User-7" already
            username = f"User-{next(user_numbers)}"
        clients[ws_id] = {"ws": ws, "username": username}
        outboxes[ws_id] = outbox
        # Under the lock: pages hear the changes in their order (live.md#publish).
        room_events.publish("joined", {"name": username, "count": len(clients)})
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
        room_events.publish("renamed", {"name": new_name, "was": old_name})
    return old_name


def remove_client(ws_id: int) -> dict | None:
    """Forget a connection; calling it twice is no error (step2.md#leaving)."""
    with clients_lock:
        client = clients.pop(ws_id, None)
        if client is not None:
            left = {"name": client["username"], "count": len(clients)}
            room_events.publish("left", left)
        return client


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
    """Return currently connected usernames."""
    with clients_lock:
        users = [client["username"] for client in clients.values()]
    return {"users": users, "count": len(users)}


# The board for a projector: how many are here, who came and went (live.md#the-board).
LIVE_PAGE = Path(__file__).with_name("live.html")


@live.get("")
def board(request):
    """Serve the live board, at /live."""
    return Response.html(LIVE_PAGE.read_text(encoding="utf-8"))


@live.get("/events")
async def room_news(request):
    """The events this page has not seen; EventSource asks again after each answer."""
    last_id = request.get_header("Last-Event-ID")  # (live.md#last-event-id)
    news = await room_events.wait_after(last_id, WAIT_SECONDS)
    if news is None:  # a new page, or an id from before a restart: the room as it is
        with clients_lock:  # publish() runs under it too: the count and the id agree
            count = json.dumps({"count": len(clients)})
            news = [SseEvent(count, event="count", id=room_events.last_id)]
    body = f"retry: {RETRY_MS}\n\n" + "".join(e.to_sse_string() for e in news)
    # Each answer is news for one page: no cache may keep it (live.md#sse).
    headers = {"Cache-Control": "no-store"}
    return Response(body=body, content_type="text/event-stream", headers=headers)


# After its routes: it brings only those it has by then (live.md#blueprint).
app.register_blueprint(live)


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
