"""make bots N=30: simulated participants who join a running chat and talk at a human pace.

    python -m workshop.bots --url http://127.0.0.1:8000 --count 30

For a live session: start the chat (make demo) in one terminal and the bots in another, to fill the
projected screen before the room joins and to show a broadcast at work. Each bot picks a name, joins
(they trickle in over --arrival seconds), says something every --pace seconds or so, now and then leaves
and comes back, and answers the heartbeat's pings like the real page. Ctrl-C takes them all out of the room.
"""

import argparse
import asyncio
import json
import random
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

NAMES = [
    "Ada",
    "Grace",
    "Linus",
    "Guido",
    "Margaret",
    "Alan",
    "Barbara",
    "Dennis",
    "Frances",
    "Ken",
    "Hedy",
    "Tim",
    "Radia",
    "Edsger",
    "Katherine",
    "Donald",
    "Sophie",
    "John",
    "Annie",
    "Bjarne",
    "Evelyn",
    "Niklaus",
    "Jean",
    "Larry",
    "Karen",
    "Yukihiro",
    "Mary",
    "James",
    "Shafi",
    "Brian",
]
LINES = [
    "Hi everyone!",
    "Hello from the back row",
    "Can you all read the projector?",
    "Which step are we on?",
    "Step 3 passes for me now",
    "My broadcast only reached me, what did I miss?",
    "Ah, msg.content, not msg.text",
    "Is anyone else on their phone?",
    "Typing this from my phone, works fine",
    "The 65th participant story is wild",
    "How many people are in here now?",
    "Refreshing to check the reconnect... yes, it came back",
    "pytest steps/step4 is all green",
    "Where is the lock taken again?",
    "Love that the checks tell you which guide section to read",
    "Coffee break soon?",
    "What happens if I close my laptop lid?",
    "I tried sending <b>bold</b> and it stayed plain text, nice",
    "Someone try /name with a very long name",
    "Does it work on the guest Wi-Fi?",
    "brb",
    "back",
    "This is much faster than I expected",
    "Async handlers, noted",
    "Is the chat room shared across processes?",
    "Thanks, that helped!",
]


class Bot:
    def __init__(self, number: int, url: str, pace: float, arrival: float, stay: bool):
        base = NAMES[number % len(NAMES)]
        self.name = (
            base if number < len(NAMES) else f"{base} {number // len(NAMES) + 1}"
        )
        self.url = url
        self.pace = pace
        self.arrival = arrival
        self.stay = stay
        self.joined = asyncio.Event()

    async def run(self) -> None:
        """Join, talk, sometimes step out and come back; reconnect if the chat restarts."""
        await asyncio.sleep(random.uniform(0, self.arrival))
        while True:
            try:
                async with connect(self.url, open_timeout=5, close_timeout=1) as ws:
                    await ws.send(json.dumps({"type": "set_name", "name": self.name}))
                    listening = asyncio.create_task(self.listen(ws))
                    try:
                        await self.talk(ws)
                    finally:
                        listening.cancel()
                # Stepped out (a phone locked, a laptop closed): back after a while.
                await asyncio.sleep(random.uniform(1, 3) * self.pace)
            except (TimeoutError, OSError, ConnectionClosed, InvalidHandshake):
                # The chat is not up (or restarting): try again.
                await asyncio.sleep(min(self.pace, 2))

    async def listen(self, ws) -> None:
        """Answer pings (as the page does), and pick another name if this one is taken."""
        async for text in ws:
            message = json.loads(text)
            if message.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message.get("type") == "error" and "taken" in message.get(
                "message", ""
            ):
                self.name = f"{self.name}{random.randint(2, 99)}"
                await ws.send(json.dumps({"type": "set_name", "name": self.name}))
            elif message.get("type") == "system" and message.get(
                "message", ""
            ).endswith(f"now known as {self.name}"):
                self.joined.set()

    async def talk(self, ws) -> None:
        """Say something every `pace` seconds or so, until deciding to step out (about one time in 15)."""
        while True:
            await asyncio.sleep(random.uniform(0.5, 1.5) * self.pace)
            await ws.send(json.dumps({"type": "chat", "message": random.choice(LINES)}))
            if not self.stay and random.random() < 1 / 15:
                return


async def main(url: str, count: int, pace: float, arrival: float, stay: bool) -> None:
    ws_url = (
        url.replace("https://", "wss://").replace("http://", "ws://").rstrip("/")
        + "/ws/chat"
    )
    bots = [Bot(number, ws_url, pace, arrival, stay) for number in range(count)]
    tasks = [asyncio.create_task(bot.run()) for bot in bots]
    await asyncio.gather(*(bot.joined.wait() for bot in bots))
    print(
        f"All {count} bots are in the room at {url}. Ctrl-C takes them out.", flush=True
    )
    await asyncio.gather(*tasks)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="the chat's address (default: %(default)s)",
    )
    parser.add_argument(
        "--count", type=int, default=30, help="how many bots (default: %(default)s)"
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=15,
        help="seconds between one bot's messages, on average",
    )
    parser.add_argument(
        "--arrival", type=float, default=10, help="the bots join over this many seconds"
    )
    parser.add_argument(
        "--stay", action="store_true", help="the bots never step out and come back"
    )
    args = parser.parse_args(argv)
    print(
        f"{args.count} bots are joining {args.url} over {args.arrival:g} s ...",
        flush=True,
    )
    try:
        asyncio.run(main(args.url, args.count, args.pace, args.arrival, args.stay))
    except KeyboardInterrupt:
        pass  # asyncio.run cancelled the bots: their connections closed, the room heard them leave
    return 0


if __name__ == "__main__":
    sys.exit(run())
