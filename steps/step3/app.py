"""A real-time chat on Cello, built one step at a time in the workshop."""

import itertools
import threading

# TODO(step 3): import json too (before threading).
# END TODO
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


# TODO(step 3): the WebSocket handler at /ws/chat, and the rules for what people may send.
#
# Limits (constants):  MAX_NAME_LENGTH = 32, MAX_MESSAGE_LENGTH = 2000, MAX_FRAME_LENGTH = 25_000
#
# class BadMessage(ValueError): input the chat refuses. The handler catches it and sends
#     {"type": "error", "message": str(problem)} to the sender only; the connection stays open.
#
# def parse_message(content) -> dict
#     `content` is msg.content: a str for a text frame, bytes for a binary one. Return
#     {"type": "chat", "message": str} or {"type": "set_name", "name": str}, or raise BadMessage for:
#     bytes; more than MAX_FRAME_LENGTH characters; JSON that is not an object (array, number, string,
#     null); JSON nested too deeply (json.loads raises RecursionError); an unknown "type".
#     Text that is not JSON at all is a chat message (as in the tutorial).
# def clean_chat_text(message) -> str     a non-empty str of at most MAX_MESSAGE_LENGTH, else BadMessage
# def clean_name(name) -> str             a str, trimmed, 1..MAX_NAME_LENGTH, printable, else BadMessage
# def rename(ws_id, new_name) -> str      under clients_lock: BadMessage if name_taken() by someone else,
#                                         else store the new name and return the old one
# def send_to(ws, payload)                ws.send_text(json.dumps(payload)); a ConnectionError (the
#                                         client just left) is no error
#
# The tutorial's handler calls broadcast(), which step 4 writes. Until then, use this stand-in that
# echoes to the connection whose handler is running (copy it as it is):
#
#     current_sender = threading.local()
#
#     def broadcast(payload: dict) -> None:
#         send_to(current_sender.ws, payload)
#
# @app.websocket("/ws/chat")
# def chat_handler(ws):
#     current_sender.ws = ws, ws_id = id(ws), username = add_client(ws_id, ws), and announce
#     "<username> joined the chat". Then loop on `msg = ws.recv()` until it returns None:
#     read the text from msg.content. (The tutorial's msg.text is the WebSocketMessage.text
#     constructor: json.loads(msg.text) raises TypeError and drops the sender.)
#     set_name -> rename(), announce "<old> is now known as <new>";  chat -> broadcast
#     {"type": "chat", "username": username, "message": ...}.
#     In a `finally:` block, remove_client(ws_id) and announce "<username> left the chat".
#
# Try it:       make step 3, then in another terminal: python -m websockets ws://127.0.0.1:8000/ws/chat
# Check it:     pytest steps/step3          Guide: docs/step3.md
# END TODO

@app.get("/")
def index(request):
    return Response.text("The Cello chat server is running. The chat page arrives in step 5.\n")
