"""A real-time chat on Cello, built one step at a time in the workshop."""

# TODO(step 2): import itertools and threading at the top of the file (Python's standard library).
# END TODO
from cello import App, Response

app = App()

# TODO(step 2): the client store, safe when many people join at once.
#
#   clients        a dict: ws_id -> {"ws": ws, "username": str}
#   clients_lock   a threading.Lock(). Cello runs each WebSocket handler on its own thread, so every
#                  read or write of `clients` happens inside `with clients_lock:`.
#   user_numbers   itertools.count(1): default names are "User-1", "User-2", ... The tutorial's
#                  f"User-{id(ws) % 10000}" repeats (60 connections got only 42 distinct names).
#
#   def name_taken(name) -> bool
#       Whether a connected client uses `name`, ignoring case (compare name.casefold()).
#       Called with clients_lock already held.
#   def add_client(ws_id, ws) -> str
#       Under the lock: take the next "User-N" that name_taken() does not report, store
#       clients[ws_id] = {"ws": ws, "username": username}, and return the name.
#   def remove_client(ws_id) -> None
#       Under the lock: clients.pop(ws_id, None). Calling it twice must be no error.
#
# Check it:     pytest steps/step2          Guide: docs/step2.md
# END TODO

@app.get("/")
def index(request):
    return Response.text("The Cello chat server is running. The chat page arrives in step 5.\n")
