"""A real-time chat on Cello, built one step at a time in the workshop."""

# TODO(step 2): import itertools and threading (Python's standard library).
# END TODO
from cello import App, Response

app = App()

# TODO(step 2): the client store, safe when many people join at once.
#
#   clients        a dict: ws_id -> {"ws": ws, "username": str}
#   clients_lock   threading.Lock(): Cello runs handlers on many threads at once, so
#                  every read or write of `clients` happens inside `with clients_lock:`
#   user_numbers   itertools.count(1): default names are "User-1", "User-2", ...
#
#   def name_taken(name) -> bool
#       Whether a connected client uses `name`, ignoring case (compare .casefold()).
#       Its callers already hold clients_lock: it must not take it again.
#   def add_client(ws_id, ws) -> str
#       Under the lock: the next "User-N" that is not taken, stored as
#       clients[ws_id] = {"ws": ws, "username": username}. Return the name.
#   class NameTaken(ValueError): """Someone else uses that name."""
#   def rename(ws_id, new_name) -> str
#       Under the lock: raise NameTaken(f"The name {new_name} is taken: choose ...")
#       if someone else uses it (ignoring case); else store it and return the old
#       name. Alice may become ALICE: that name is her own.
#   def remove_client(ws_id) -> None
#       Under the lock: clients.pop(ws_id, None). Calling it twice is no error.
#
# Check it:     pytest steps/step2          Guide: docs/step2.md
# END TODO


@app.get("/")
def index(request):
    return Response.text("The chat server is running. The page arrives in step 5.\n")
