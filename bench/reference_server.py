"""The bench's yardstick: the workshop's chat protocol on the `websockets`
library's asyncio server, broadcasting with its `broadcast()`.

Same protocol as the finished app (join/leave/rename announcements, unique
names, 2,000-character limit, GET /users), written the way that library's
documentation recommends, so `make bench` compares like with like.

    python bench/reference_server.py --port 8765
"""

import argparse
import asyncio
import http
import itertools
import json

from websockets.asyncio.server import broadcast, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

MAX_NAME = 32
MAX_MESSAGE = 2000

names: dict = {}  # connection -> display name
default_numbers = itertools.count(1)


def announce(payload):
    broadcast(names.keys(), json.dumps(payload))


def name_taken(name, asking):
    wanted = name.casefold()
    return any(
        other.casefold() == wanted
        for conn, other in names.items()
        if conn is not asking
    )


def users_endpoint(connection, request):
    if request.path == "/users":
        body = json.dumps({"users": list(names.values()), "count": len(names)}).encode()
        headers = Headers(
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return Response(http.HTTPStatus.OK, "OK", headers, body)
    return None


async def chat(connection):
    name = f"User-{next(default_numbers)}"
    while name_taken(name, connection):
        name = f"User-{next(default_numbers)}"
    names[connection] = name
    announce({"type": "system", "message": f"{name} joined the chat"})
    try:
        async for text in connection:
            if not isinstance(text, str):
                await connection.send(
                    json.dumps({"type": "error", "message": "Send text, not binary."})
                )
                continue
            try:
                data = json.loads(text)
            except ValueError:
                data = {"type": "chat", "message": text}
            if not isinstance(data, dict):
                data = {"type": "chat", "message": text}
            kind = data.get("type", "chat")
            if kind == "set_name":
                new = str(data.get("name", "")).strip()
                if not 1 <= len(new) <= MAX_NAME or name_taken(new, connection):
                    await connection.send(
                        json.dumps(
                            {
                                "type": "error",
                                "message": f"Name must be 1-{MAX_NAME} characters and not in use.",
                            }
                        )
                    )
                    continue
                old, names[connection] = names[connection], new
                announce({"type": "system", "message": f"{old} is now known as {new}"})
            elif kind == "chat":
                message = data.get("message")
                if (
                    not isinstance(message, str)
                    or not message.strip()
                    or len(message) > MAX_MESSAGE
                ):
                    await connection.send(
                        json.dumps(
                            {
                                "type": "error",
                                "message": f"Messages are 1-{MAX_MESSAGE} characters.",
                            }
                        )
                    )
                    continue
                announce(
                    {"type": "chat", "username": names[connection], "message": message}
                )
            else:
                await connection.send(
                    json.dumps({"type": "error", "message": f"Unknown type {kind!r}."})
                )
    finally:
        left = names.pop(connection)
        announce({"type": "system", "message": f"{left} left the chat"})


async def main(host, port):
    # The library's defaults, compression included: it compresses for clients that ask, as browsers do.
    async with serve(chat, host, port, process_request=users_endpoint) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
