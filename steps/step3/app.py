"""A real-time chat on Cello, built one step at a time in the workshop."""

import itertools

# TODO(step 3): import json (between itertools and threading).
# END TODO
import threading

from cello import App, Response

# TODO(step 3): from messages import BadMessage, parse_message
# (messages.py, next to this file, holds the rules for what people may send.)
# END TODO

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


# TODO(step 3): the WebSocket handler at /ws/chat.
#
# Keep this stand-in as it is: the handler calls broadcast(), which step 4 writes. Until
# then it echoes to the sender (step3.md#a-bridge-to-step-4).
current_sender = threading.local()


def broadcast(payload: dict) -> None:
    send_to(current_sender.ws, payload)


# Below it, write:
#
#   def send_to(ws, payload) -> None
#       ws.send_text(json.dumps(payload)); a ConnectionError (they left) is no error.
#
#   def announce(news) -> None:  broadcast({"type": "system", "message": news})
#
#   @app.websocket("/ws/chat")
#   def chat_handler(ws):
#       current_sender.ws = ws; ws_id = id(ws); username = add_client(ws_id, ws)
#       announce "<username> joined the chat". Then, in a try: block, loop on
#       `while (msg := ws.recv()) is not None:` and, for each message:
#         data = parse_message(msg.content)   (msg.content: msg.text is not the text)
#         set_name: old_name = rename(ws_id, data["name"]), then announce
#                   "<old> is now known as <new>" and use the new name from now on.
#         chat:     broadcast({"type": "chat", "username": username, "message": ...})
#         a BadMessage or a NameTaken: send_to(ws, {"type": "error", "message": ...})
#                   with str(problem), to the sender only; the loop goes on.
#       finally: remove_client(ws_id) and announce "<username> left the chat".
#
# Try it:    make step 3, then: python -m websockets ws://127.0.0.1:8000/ws/chat
# Check it:  pytest steps/step3          Guide: docs/step3.md
# END TODO


@app.get("/")
def index(request):
    return Response.text("The chat server is running. The page arrives in step 5.\n")
