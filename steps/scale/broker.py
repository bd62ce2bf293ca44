"""One room over many processes and machines, through Redis: handed out ready-made, like
classroom.py (docs/scale.md#the-broker).

app.py uses these:

    broker = Broker(url, silence_limit=...)  # at import: it starts nothing yet
    broker.start(deliver)      # in each process, after Cello forked it (startup hook)
    broker.publish(text)       # one message for the whole room; never blocks
    broker.next_number()       # a number for a default name, unique room-wide
    broker.claim(name, replacing=None)  # True if the name is now ours, room-wide
    broker.release(name)       # its participant left: the name is free again
    broker.users()             # {"users": [...], "count": n, "servers": {...}}
    broker.stop()              # a clean exit (shutdown hook)

`deliver(text)` is the app's: give one message to every participant of this process.

Messages. publish() queues the text, and a publisher thread sends it to the Redis
channel `chat:room`. A subscriber thread hears every message of that channel, this
process's own included, and calls deliver() with each, in the order Redis sent them:
every process gives the same messages, in the same order, to its participants.

Names. `chat:names` (a hash: name in lower case -> process) holds every name in the
room, and `chat:members:<process>` (lower case -> as written) what GET /users lists.
A claim is one Lua script, so two processes claiming "Ada" at once cannot both win.

Processes that die. Each process renews a key `chat:alive:<process>` that expires after
half the silence limit, six times per silence limit. At each renewal a script looks for
processes whose key expired (killed, frozen, cut off): it frees their names and hands
them to exactly one survivor, which announces their participants as left. So a process
killed with SIGKILL is announced within the silence limit, and holds no name after.

Redis going away. The subscriber notices (the connection closes, or Redis stops
answering its pings), tells the participants here, and from then on publish() delivers
here only: each process goes on as a room of its own, and claim() asks nobody else.
When Redis answers again, the subscriber subscribes again, writes this process's names
back (a Redis restarted empty has forgotten them), tells the participants here, and the
room is one again. Messages said meanwhile stay where they were said: nothing is
replayed, so nothing arrives twice.

Redis pub/sub delivers at most once: a message published just as Redis goes away may
reach some processes and not others. This process numbers its own messages, so its
participants get each of them once, whether it came back through Redis or was
delivered here because Redis failed.
"""

import itertools
import json
import os
import queue
import socket
import sys
import threading
import time
import uuid

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PREFIX = "chat:"
CHANNEL = PREFIX + "room"
LOST = (
    "Lost contact with the other chat servers: for now you are chatting only with the "
    "people on this server. Reconnecting..."
)
BACK = "Back in touch with the other chat servers: the whole room is together again."

# Take `name` for process `me`; a rename frees the old name in the same step. Asking
# twice is no error (a command retried after a timeout may have run already).
# KEYS names, members:<me>  ARGV me, name folded, name as written, old folded or ''
CLAIM = """
if ARGV[2] ~= ARGV[4] then
  local owner = redis.call('HGET', KEYS[1], ARGV[2])
  if owner and owner ~= ARGV[1] then return 0 end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
  if ARGV[4] ~= '' then
    if redis.call('HGET', KEYS[1], ARGV[4]) == ARGV[1] then
      redis.call('HDEL', KEYS[1], ARGV[4])
    end
    redis.call('HDEL', KEYS[2], ARGV[4])
  end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# KEYS names, members:<me>  ARGV me, name folded
RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[1] then
  redis.call('HDEL', KEYS[1], ARGV[2])
end
return redis.call('HDEL', KEYS[2], ARGV[2])
"""

# Forget a process: free its names and return them as written.
FORGET = """
local function forget(prefix, process)
  local members = prefix .. 'members:' .. process
  local held = redis.call('HGETALL', members)
  local names = {}
  for i = 1, #held, 2 do
    if redis.call('HGET', prefix .. 'names', held[i]) == process then
      redis.call('HDEL', prefix .. 'names', held[i])
    end
    table.insert(names, held[i + 1])
  end
  redis.call('DEL', members)
  redis.call('SREM', prefix .. 'processes', process)
  return names
end
"""

# This process is alive; forget every process whose liveness expired, and return their
# names (to exactly one caller: a script runs alone). Returns {whether this process
# had been forgotten or Redis restarted, the names of the dead}.
# KEYS alive:<me>, processes, reaped:<me>  ARGV me, ttl ms, prefix, '1' to reap
BEAT = (
    FORGET
    + """
local me, prefix = ARGV[1], ARGV[3]
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
local lost = redis.call('SADD', KEYS[2], me) + redis.call('EXISTS', KEYS[3])
local gone = {}
if ARGV[4] == '1' then
  for _, other in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if other ~= me and redis.call('EXISTS', prefix .. 'alive:' .. other) == 0 then
      for _, name in ipairs(forget(prefix, other)) do table.insert(gone, name) end
      redis.call('SET', prefix .. 'reaped:' .. other, '1', 'EX', 86400)
    end
  end
end
return {lost, gone}
"""
)

# A clean exit: forget this process now. KEYS alive:<me>  ARGV me, prefix
LEAVE = (
    FORGET
    + """
redis.call('DEL', KEYS[1])
return forget(ARGV[2], ARGV[1])
"""
)

# After an outage: make Redis hold exactly this process's names again. Returns {names
# someone elsewhere took meanwhile, whether this process had been given up for dead}.
# KEYS names, members:<me>, alive:<me>, processes, reaped:<me>
# ARGV me, ttl ms, then (folded, as written) pairs
RESYNC = """
local names, members, me = KEYS[1], KEYS[2], ARGV[1]
local want = {}
for i = 3, #ARGV, 2 do want[ARGV[i]] = ARGV[i + 1] end
for _, folded in ipairs(redis.call('HKEYS', members)) do
  if not want[folded] then
    redis.call('HDEL', members, folded)
    if redis.call('HGET', names, folded) == me then
      redis.call('HDEL', names, folded)
    end
  end
end
local taken = {}
for i = 3, #ARGV, 2 do
  local owner = redis.call('HGET', names, ARGV[i])
  if owner and owner ~= me then
    table.insert(taken, ARGV[i + 1])
  else
    redis.call('HSET', names, ARGV[i], me)
    redis.call('HSET', members, ARGV[i], ARGV[i + 1])
  end
end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[4], me)
return {taken, redis.call('DEL', KEYS[5])}
"""

# Everybody in the room, process by process. KEYS processes  ARGV prefix
USERS = """
local result = {}
for _, process in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  table.insert(result, process)
  table.insert(result, redis.call('HVALS', ARGV[1] .. 'members:' .. process))
end
return result
"""


def system(message: str) -> str:
    return json.dumps({"type": "system", "message": message})


class Broker:
    """This process's link to the room: see the module's docstring."""

    def __init__(self, url: str, silence_limit: float):
        self.url = url
        # The others look every sixth of the silence limit; a process whose liveness
        # (half of it) ran out is dead: announced within 2/3 of the silence limit.
        self.interval = max(silence_limit / 6, 0.25)
        self.alive_ms = int(max(silence_limit / 2, 3 * self.interval) * 1000)
        self.me = f"{socket.gethostname()}-{os.getpid()}"  # start() makes it unique
        self.online = False  # subscribed, and Redis holds our names
        self.deliver = None  # the app's deliver(text), given to start()
        self._redis = None  # the client for commands, made by start()
        self._lock = threading.RLock()  # guards _mine, online, _numbers
        self._mine: dict[str, str] = {}  # our participants' names: folded -> written
        self._numbers = itertools.count(1)  # default-name numbers before start()
        self._outgoing: queue.SimpleQueue = queue.SimpleQueue()
        self._sequence = itertools.count(1)  # numbers our own messages
        self._own_lock = threading.Lock()
        self._last_own = 0  # the highest of our own numbers delivered here
        self._stopping = False  # stop() was called: the threads wind down
        self._last_words = False  # stopped while online: publish() sends at once
        self._was_offline = False  # we told our participants that Redis went away
        self._unsure = False  # a claim or release failed: Redis may not hold our names
        self._beat_now = threading.Event()  # wakes the liveness thread early
        self._reap_after = 0.0  # no giving others up for dead before (monotonic)

    # --- life cycle -------------------------------------------------------------------

    def start(self, deliver, wait: float = 3.0) -> None:
        """Start this process's publisher, subscriber and liveness threads, and wait up
        to `wait` s for Redis. Call it in each process, after the fork: Cello's
        workers do not have the threads started before app.run()."""
        self.deliver = deliver
        self.me = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        # One retry, no waiting: a connection left stale by a Redis restart is
        # replaced at once, and a Redis that is gone fails fast (redis-py's default
        # retries 10 times with backoff: seconds of a frozen event loop).
        self._redis = redis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=1,
            socket_connect_timeout=1,
            retry=Retry(NoBackoff(), 1),
        )
        self._scripts = {
            name: self._redis.register_script(source)
            for name, source in (
                ("claim", CLAIM),
                ("release", RELEASE),
                ("beat", BEAT),
                ("leave", LEAVE),
                ("resync", RESYNC),
                ("users", USERS),
            )
        }
        with self._lock:
            self._numbers = iter(())  # from Redis from now on, a block at a time
        for target in (self._publisher, self._subscriber, self._liveness):
            name = "chat" + target.__name__.replace("_", "-")
            threading.Thread(target=target, name=name, daemon=True).start()
        deadline = time.monotonic() + wait
        while not self.online and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.online:
            print(
                f"[broker] No Redis answers at {self.url}: this process is a room of "
                "its own until one does (docs/scale.md#run-it).",
                file=sys.stderr,
                flush=True,
            )

    def stop(self) -> None:
        """A clean exit: our participants are announced as left, at once. Cello closes
        their connections as it runs the shutdown hooks: those whose handlers leave
        within half a second say so themselves, the script below speaks for the rest."""
        with self._lock:
            self._stopping = True
            was_online, self.online = self.online, False
            self._last_words = was_online
        if not was_online:
            return  # if Redis comes back, the others give us up for dead
        queued = []
        while not self._outgoing.empty():
            queued.append(self._outgoing.get_nowait())
        self._send(queued)
        deadline = time.monotonic() + 0.5
        while self._mine and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            self._last_words = False  # from now on, nothing more is published
            try:
                gone = self._scripts["leave"](
                    keys=[f"{PREFIX}alive:{self.me}"], args=[self.me, PREFIX]
                )
            except redis.RedisError:
                return
        self._send([(0, system(f"{name} left the chat")) for name in gone])

    # --- messages ---------------------------------------------------------------------

    def publish(self, text: str) -> None:
        """Send one message to the whole room. Never blocks: a thread sends it."""
        if self._last_words:
            self._send([(next(self._sequence), text)])
        elif not self._stopping:
            self._outgoing.put((next(self._sequence), text))

    def _send(self, batch: list[tuple[int, str]]) -> bool:
        """Publish a batch in one round trip; False if Redis failed."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            for number, text in batch:
                pipe.publish(CHANNEL, f"{self.me} {number} {text}")
            pipe.execute()
            return True
        except redis.RedisError:
            return False

    def _publisher(self) -> None:
        while True:
            batch = [self._outgoing.get()]
            while len(batch) < 500:  # what queued meanwhile goes in one round trip
                try:
                    batch.append(self._outgoing.get_nowait())
                except queue.Empty:
                    break
            # The subscriber notices a failure too; our participants still hear us.
            if (self.online or self._last_words) and self._send(batch):
                continue
            for number, text in batch:
                self._deliver_own(number, text)

    def _deliver_own(self, number: int, text: str) -> None:
        """Our own message `number`, whichever way it came: delivered here once."""
        with self._own_lock:
            if number > self._last_own:
                self._last_own = number
                self._hand_over(text)

    def _hand_over(self, text: str) -> None:
        try:
            self.deliver(text)
        except Exception as error:  # a bug in deliver() must not stop the room
            print(f"[broker] deliver() failed: {error!r}", file=sys.stderr, flush=True)

    def _subscriber(self) -> None:
        pause = 0.1
        while not self._stopping:
            pubsub = None
            try:
                # No retry: a lost connection must be seen, not quietly reopened (a
                # restarted Redis has forgotten our names: only _go_online() writes
                # them back).
                client = redis.Redis.from_url(
                    self.url,
                    decode_responses=True,
                    socket_timeout=5,
                    socket_connect_timeout=2,
                    retry=Retry(NoBackoff(), 0),
                )
                # Confirmations and pongs are kept as signs of life: redis-py 8.1 turns
                # a pong into None when told to ignore them (docs/scale.md#the-broker).
                pubsub = client.pubsub(ignore_subscribe_messages=False)
                pubsub.subscribe(CHANNEL)
                self._go_online()
                pause = 0.1
                last_heard, pinged = time.monotonic(), False
                while not self._stopping:
                    message = pubsub.get_message(timeout=self.interval)
                    now = time.monotonic()
                    if message is None:
                        if now - last_heard > 3 * self.interval:
                            raise redis.ConnectionError("Redis stopped answering")
                        if now - last_heard > self.interval and not pinged:
                            pubsub.ping()
                            pinged = True
                        continue
                    last_heard, pinged = now, False
                    if message["type"] != "message":
                        continue
                    origin, number, text = message["data"].split(" ", 2)
                    if origin == self.me:
                        self._deliver_own(int(number), text)
                    else:
                        self._hand_over(text)
            except (redis.RedisError, OSError):
                self._go_offline()
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except (redis.RedisError, OSError):
                        pass
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    # --- online, offline --------------------------------------------------------------

    def _go_online(self) -> None:
        """Subscribed (again): write our names back, then publish through Redis."""
        with self._lock:
            if self._stopping:
                return
            keys = [
                f"{PREFIX}{key}"
                for key in ("names", f"members:{self.me}", f"alive:{self.me}")
            ]
            keys += [f"{PREFIX}processes", f"{PREFIX}reaped:{self.me}"]
            pairs = [part for item in self._mine.items() for part in item]
            taken, reaped = self._scripts["resync"](
                keys=keys, args=[self.me, self.alive_ms, *pairs]
            )
            was_offline, self._was_offline = self._was_offline, False
            self.online, self._unsure = True, False
            # Just back: the others may not have renewed their liveness yet. Give
            # them one liveness period before giving any of them up for dead.
            self._reap_after = time.monotonic() + self.alive_ms / 1000
            back = [name for name in self._mine.values() if name not in taken]
        if reaped:  # the others announced our participants as left: they are here
            for name in back:
                self.publish(system(f"{name} joined the chat"))
        for name in taken:
            self.publish(
                system(
                    f"Two people are now called {name}: the one who joined while "
                    "the servers were out of touch, please choose another name."
                )
            )
        if was_offline:
            self._hand_over(system(BACK))

    def _go_offline(self) -> None:
        with self._lock:
            was_online, self.online = self.online, False
            self._was_offline = self._was_offline or was_online
        if was_online and not self._stopping:
            print(
                f"[broker] Lost contact with Redis at {self.url}: reconnecting.",
                file=sys.stderr,
                flush=True,
            )
            self._hand_over(system(LOST))

    def _liveness(self) -> None:
        while not self._stopping:
            self._beat_now.wait(self.interval)
            self._beat_now.clear()
            if not self.online:
                continue  # the subscriber registers us again when Redis is back
            keys = [f"{PREFIX}alive:{self.me}", f"{PREFIX}processes"]
            keys.append(f"{PREFIX}reaped:{self.me}")
            reap = int(time.monotonic() > self._reap_after)
            try:
                lost, gone = self._scripts["beat"](
                    keys=keys, args=[self.me, self.alive_ms, PREFIX, reap]
                )
                # Redis restarted, we were given up for dead, or a claim failed
                # midway: write our names back.
                if (lost or self._unsure) and self.online:
                    self._go_online()
            except redis.RedisError:
                continue  # the subscriber decides whether Redis is gone
            for name in gone:
                self.publish(system(f"{name} left the chat"))

    # --- names ------------------------------------------------------------------------

    def next_number(self) -> int:
        """A number for a default name such as User-7, unique room-wide: Redis hands
        them out 20 at a time to each process."""
        with self._lock:
            number = next(self._numbers, None)
            if number is None:
                try:
                    last = self._redis.incrby(f"{PREFIX}numbers", 20)
                    self._numbers = iter(range(last - 19, last + 1))
                except redis.RedisError:  # no Redis: numbers nobody is likely to have
                    start = 100_000 + int.from_bytes(os.urandom(3))
                    self._numbers = itertools.count(start)
                number = next(self._numbers)
            return number

    def claim(self, name: str, replacing: str | None = None) -> bool:
        """Take `name` for a participant here, room-wide, ignoring case; `replacing` is
        the name they give up (a rename), freed in the same step. False if somebody
        has it, here or in another process. Without Redis, here only."""
        folded, old = name.casefold(), (replacing.casefold() if replacing else "")
        with self._lock:
            if folded != old and folded in self._mine:
                return False
            if self.online:
                keys = [f"{PREFIX}names", f"{PREFIX}members:{self.me}"]
                try:
                    args = [self.me, folded, name, old]
                    if not self._scripts["claim"](keys=keys, args=args):
                        return False
                except redis.RedisError:  # a timeout, or Redis just went away:
                    self._not_sure()  # decide here; the liveness thread writes it
            self._mine.pop(old, None)
            self._mine[folded] = name
            return True

    def release(self, name: str) -> None:
        """The participant called `name` left: the name is free again, room-wide."""
        folded = name.casefold()
        with self._lock:
            if self._mine.pop(folded, None) is None:
                return
            if self.online or self._last_words:
                keys = [f"{PREFIX}names", f"{PREFIX}members:{self.me}"]
                try:
                    self._scripts["release"](keys=keys, args=[self.me, folded])
                except redis.RedisError:
                    self._not_sure()  # the liveness thread forgets it in Redis too

    def _not_sure(self) -> None:
        if not self._unsure:
            print(
                "[broker] Redis did not answer in time: this process's names are "
                "written back to it.",
                file=sys.stderr,
                flush=True,
            )
        self._unsure = True
        self._beat_now.set()

    def users(self) -> dict:
        """Everybody in the room: {"users": [...], "count": n, "servers": {process:
        count}}. Without Redis: this process's participants, and "only_this_server"."""
        if self.online:
            try:
                flat = self._scripts["users"](
                    keys=[f"{PREFIX}processes"], args=[PREFIX]
                )
                servers = dict(zip(flat[::2], flat[1::2], strict=True))
                users = [name for names in servers.values() for name in names]
                counts = {process: len(names) for process, names in servers.items()}
                return {"users": users, "count": len(users), "servers": counts}
            except redis.RedisError:
                pass
        with self._lock:
            users = list(self._mine.values())
        return {
            "users": users,
            "count": len(users),
            "servers": {self.me: len(users)},
            "only_this_server": True,
        }
