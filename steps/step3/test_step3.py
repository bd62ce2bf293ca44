"""Step 3 checks: the WebSocket handler at /ws/chat. Run: pytest steps/step3

In this step broadcast() is still the stand-in that echoes to the sender, so each check
here needs only one participant: whatever the handler announces comes back to the client
that caused it.
"""

import json
import re

import pytest

from workshop.harness import WAIT_SECONDS, eventually, join


@pytest.mark.guide("step3.md#the-handler")
def test_joining_announces_a_default_name(connect):
    """A new participant hears "User-N joined the chat"."""
    client = connect()
    joined = client.wait_for_system("joined the chat")
    assert re.fullmatch(r"User-\d+ joined the chat", joined["message"]), (
        'The join announcement should read "User-<number> joined the chat", not '
        f"{joined['message']!r}."
    )


@pytest.mark.guide("step3.md#read-the-message")
def test_the_first_message_comes_back_as_chat(connect):
    """A chat message comes back as {"type": "chat", "username": ..., "message": ...},
    and the connection stays open.
    """
    client, name = join(connect)
    client.say("hello, room")
    client.wait_for_chat(name, "hello, room")
    client.say("still here")
    client.wait_for_chat(name, "still here")


@pytest.mark.guide("step3.md#read-the-message")
def test_plain_text_is_a_chat_message(connect):
    """Text that is not JSON (what a terminal client sends) is a chat message too."""
    client, name = join(connect)
    client.send_text("just typing")
    client.wait_for_chat(name, "just typing")


@pytest.mark.guide("step3.md#set-name")
def test_set_name_renames_and_announces(connect):
    """{"type": "set_name", "name": " Alice3 "} renames (trimmed) and announces "<old>
    is now known as Alice3".
    """
    client, name = join(connect)
    client.rename("  Alice3  ")
    client.wait_for_system(f"{name} is now known as Alice3")
    client.say("hi")
    client.wait_for_chat("Alice3", "hi")


@pytest.mark.guide("step3.md#bad-input")
def test_names_and_messages_at_the_limits_are_accepted(connect):
    """A 32-character name and a 2,000-character message (even one JSON escapes heavily)
    are accepted.
    """
    client, name = join(connect)
    long_name = "N" * 31 + "3"
    client.rename(long_name)
    client.wait_for_system(f"{name} is now known as {long_name}")
    client.say("m" * 2000)
    client.wait_for_chat(long_name, "m" * 2000)
    # json.dumps escapes each as \ud83d\ude00: 24,000 characters on the wire.
    client.say("😀" * 2000)
    client.wait_for_chat(long_name, "😀" * 2000)


BAD_INPUT = {
    "set_name without a name": json.dumps({"type": "set_name"}),
    "a name that is a number": json.dumps({"type": "set_name", "name": 42}),
    "an empty name": json.dumps({"type": "set_name", "name": "   "}),
    "a name of 33 characters": json.dumps({"type": "set_name", "name": "x" * 33}),
    "a chat message that is not a string": json.dumps(
        {"type": "chat", "message": ["hi"]}
    ),
    "a chat message of 2,001 characters": json.dumps(
        {"type": "chat", "message": "y" * 2001}
    ),
    "an unknown type": json.dumps({"type": "shout", "message": "hi"}),
    "a JSON array": "[1, 2]",
    "a JSON number": "42",
    "a JSON string": '"hello"',
    "JSON null": "null",
    "a 200 KB message": "z" * 200_000,
    "JSON nested 5,000 deep": "[" * 5000
    + "]" * 5000,  # json.loads raises RecursionError, not a decode error
    "a binary frame": b"\x00\x01binary",
}


@pytest.mark.guide("step3.md#bad-input")
@pytest.mark.parametrize("what", BAD_INPUT)
def test_bad_input_gets_an_error_and_the_connection_stays_open(connect, what):
    """Bad input gets {"type": "error", "message": ...} back, and the connection keeps
    working.
    """
    client, name = join(connect)
    payload = BAD_INPUT[what]
    if isinstance(payload, bytes):
        client.send_bytes(payload)
    else:
        client.send_text(payload)
    client.expect_error(
        after=what,
        accepted_if=lambda m: (
            m.get("username") == name or "is now known as" in str(m.get("message"))
        ),
    )
    client.say("after the error")
    client.wait_for_chat(name, "after the error")


@pytest.mark.guide("step3.md#set-name")
def test_a_name_in_use_is_refused_ignoring_case(connect):
    """Nobody can take a name someone else uses, whatever its letter case."""
    alice, alice_default = join(connect)
    alice.rename("Dana3")
    alice.wait_for_system(f"{alice_default} is now known as Dana3")
    bob, _ = join(connect)
    bob.rename(" dANA3 ")
    error = bob.expect_error(after='set_name to " dANA3 " while Dana3 is connected')
    assert "taken" in error["message"].lower() or "use" in error["message"].lower(), (
        f"The error should say the name is taken, but it says {error['message']!r}."
    )


@pytest.mark.guide("step3.md#set-name")
def test_you_may_rename_yourself_in_another_case(connect):
    """Your own name is yours in any letter case: "Finn3" may become "FINN3"."""
    client, default = join(connect)
    client.rename("Finn3")
    client.wait_for_system(f"{default} is now known as Finn3")
    client.rename("FINN3")
    try:
        client.wait_for_system("Finn3 is now known as FINN3")
    except AssertionError as problem:
        raise AssertionError(
            f"Renaming yourself from Finn3 to FINN3 did not go through: {problem}\n"
            "Your own name does not count as taken: let rename() decide, it compares "
            "with the old name first."
        ) from None


@pytest.mark.guide("step3.md#cleanup")
def test_leaving_frees_the_name(connect):
    """When a participant disconnects, the handler removes them: the name is free."""
    alice, alice_default = join(connect)
    alice.rename("Eve3")
    alice.wait_for_system(f"{alice_default} is now known as Eve3")
    alice.close()
    bob, _ = join(connect)

    def bob_becomes_eve():
        bob.rename("Eve3")
        reply = bob.wait_for(
            lambda m: (
                m.get("type") == "error"
                or m.get("message", "").endswith("is now known as Eve3")
            ),
            "the answer to set_name Eve3",
        )
        return reply["type"] == "system"

    eventually(
        bob_becomes_eve,
        "the name Eve3 to be free after its owner disconnected",
        WAIT_SECONDS,
    )
