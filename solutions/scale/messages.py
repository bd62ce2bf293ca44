"""What people may send to the chat, and the answer they get when it is not that.

Handed out in step 3, where you complete two of its rules. The handler in app.py calls
parse_message(msg.content) on each frame, and sends a BadMessage's text back to its
sender only. Every rule is explained in the guide: docs/step3.md#bad-input.
"""

import json

MAX_NAME_LENGTH = 32
MAX_MESSAGE_LENGTH = 2000
# Refused before json.loads reads it; fits 2,000 characters sent as \uXXXX pairs.
MAX_FRAME_LENGTH = 25_000
EXAMPLE = '{"type": "chat", "message": "hi"}'


class BadMessage(ValueError):
    """Input the chat refuses: the sender is told why, and stays connected."""


def parse_message(content) -> dict:
    """One frame as {"type": "chat", "message": ...} or {"type": "set_name", ...}."""
    if not isinstance(content, str):
        raise BadMessage(f"Binary frames are not supported: send text, {EXAMPLE}")
    if len(content) > MAX_FRAME_LENGTH:
        raise too_long(content)
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        data = {"type": "chat", "message": content}  # plain text is a chat message
    except RecursionError:  # "[[[[..." nested thousands deep (step3.md#bad-input)
        raise BadMessage("That JSON is nested too deeply.") from None
    if not isinstance(data, dict):
        raise BadMessage(f"Send a JSON object like {EXAMPLE}, not {json_kind(data)}.")
    kind = data.get("type")
    if kind == "pong":
        return {"type": "pong"}  # the page's answer to a ping (step7.md#heartbeat)
    if kind == "chat":
        return {"type": "chat", "message": clean_chat_text(data.get("message"))}
    if kind == "set_name":
        return {"type": "set_name", "name": clean_name(data.get("name"))}
    raise BadMessage(f'Unknown type {json.dumps(kind)}: use "chat" or "set_name".')


def json_kind(value) -> str:
    """What was sent, in JSON's words: "a JSON array", not Python's "list"."""
    kinds = {list: "array", str: "string", bool: "boolean", int: "number"}
    return "null" if value is None else f"a JSON {kinds.get(type(value), 'number')}"


def too_long(text: str) -> BadMessage:
    length, limit = len(text), MAX_MESSAGE_LENGTH
    return BadMessage(f"That message has {length:,} characters; at most {limit:,}.")


def clean_chat_text(message) -> str:
    if not isinstance(message, str):
        raise BadMessage('A chat message needs "message": a string.')
    if not message.strip():
        raise BadMessage("Empty messages are not sent.")
    if len(message) > MAX_MESSAGE_LENGTH:
        raise too_long(message)
    return message


def clean_name(name) -> str:
    if not isinstance(name, str):
        raise BadMessage('set_name needs "name": a string, such as "Ada".')
    name = name.strip()
    if not name:
        raise BadMessage("A name cannot be empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise BadMessage(f"A name can be at most {MAX_NAME_LENGTH} characters long.")
    if not name.isprintable():
        raise BadMessage("A name cannot contain line breaks or control characters.")
    return name
