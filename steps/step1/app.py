# TODO(step 1): create the Cello app and answer a first request.
#
#   1. A docstring first, so readers know what this file is:
#          """A real-time chat on Cello, built one step at a time in the workshop."""
#   2. Import the framework:        from cello import App, Response
#   3. Create the application:      app = App()
#   4. Answer GET / with some text:
#          @app.get("/")
#          def index(request):
#              return Response.text("The chat server is running. ...\n")
#
# Run it:       make step 1        then open http://127.0.0.1:8000
# Check it:     pytest steps/step1
# Guide:        docs/step1.md  (make docs, then http://127.0.0.1:8001/step1/)
# END TODO
