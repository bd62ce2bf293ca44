"""A real-time chat on Cello, built one step at a time in the workshop."""

from cello import App, Response

app = App()


@app.get("/")
def index(request):
    return Response.text("The chat server is running. The page arrives in step 5.\n")
