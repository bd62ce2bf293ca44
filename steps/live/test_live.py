"""Chapter "live" checks: a blueprint under /live, and the room's news as server-sent
events that a page resumes without missing or repeating any.

Run: pytest steps/live

Each check starts the app as `python app.py --host 127.0.0.1 --port P`; a request for
news waits FEED_WAIT_SECONDS instead of 25 when there is none (set through the
environment). The checks play the browser's EventSource in Python
(workshop/sse_client.py); test_live_board.py does it in Chromium.
"""

import concurrent.futures
import random

import cello
import pytest

from workshop.harness import (
    WAIT_SECONDS,
    CheckFailure,
    eventually,
    gave_up_waiting,
    join,
    need,
    online,
    quote_problems,
    start_server,
)
from workshop.sse_client import EventSource, ask

FEED = "/live/events"
FEED_WAIT_SECONDS = 1.5
AT_ONCE_SECONDS = 1.0  # an answer that does not wait comes before this


@pytest.fixture(scope="module")
def server(app_dir):
    """The app as `python app.py --port P`, answering "no news" after 1.5 s."""
    env = {"CHAT_EVENTS_WAIT_SECONDS": str(FEED_WAIT_SECONDS)}
    running = start_server(app_dir, env=env, direct=True)
    yield running
    running.stop()


@pytest.fixture(scope="module", autouse=True)
def asked_with_no_news(app_dir):
    """A page that has seen everything, on a second copy of the app that nobody joins,
    asks for news as this file's checks begin: they run while it waits
    (docs/performance.md#waits). Yields that app, and the future (id, answer)."""
    env = {"CHAT_EVENTS_WAIT_SECONDS": str(FEED_WAIT_SECONDS)}
    unvisited = start_server(app_dir, env=env, direct=True)

    def ask_as_a_page_that_saw_everything():
        try:
            seen = first_answer(unvisited).last_id
            return seen, first_answer(unvisited, seen, waits=True)
        finally:
            unvisited.stop()  # meanwhile: an app stuck in a handler takes 2 s to stop

    with concurrent.futures.ThreadPoolExecutor(1) as asking:
        yield unvisited, asking.submit(ask_as_a_page_that_saw_everything)


def first_answer(server, last_id=None, waits=False):
    """GET /live/events, which must answer 200 text/event-stream: at once, unless it
    `waits` for news."""
    patience = FEED_WAIT_SECONDS * 2 if waits else AT_ONCE_SECONDS
    try:
        answer = ask(server, FEED, last_id, timeout=patience)
    except TimeoutError:
        gave_up_waiting(patience)
        raise CheckFailure(
            f"GET {FEED} with Last-Event-ID {last_id!r} got no answer within "
            f"{patience:g} s: a page that has seen nothing yet, or whose id this run "
            "cannot continue from, is answered at once (wait_after() returns None: "
            "answer the count). Is the page's Last-Event-ID header what you give "
            "wait_after()?",
            read="live.md#last-event-id",
        ) from None
    assert answer.status == 200, (
        f"GET {FEED} answered {answer.status} instead of 200: {answer.body[:200]}"
    )
    assert answer.content_type.startswith("text/event-stream"), (
        f"GET {FEED} answered Content-Type {answer.content_type!r}: EventSource reads "
        "only text/event-stream, and gives up on anything else."
    )
    return answer


def quiet_room(server):
    """Nobody left from an earlier check: their departures are published by now."""
    eventually(lambda: not online(server), "the room to be empty")


@pytest.mark.guide("live.md#blueprint")
def test_the_board_sits_in_a_blueprint_under_live(server, chat_module):
    """app.py's `live` is a cello.Blueprint with the prefix /live, registered on the
    app: GET /live answers the board (live.html), and the chat stays where it was."""
    live = need(
        chat_module, "live", 'Create it after `app = App()`: live = Blueprint("/live").'
    )
    assert isinstance(live, cello.Blueprint) and live.prefix == "/live", (
        f'`live` should be Blueprint("/live"), not {live!r}.'
    )
    status, _, body = server.get("/live")
    assert status == 200 and "EventSource" in body, (
        f"GET /live answered {status} without the board: serve live.html from "
        '`@live.get("")`, and call app.register_blueprint(live) after the routes '
        "(a blueprint registered earlier brings none of the later ones)."
    )
    assert server.get("/")[0] == 200 and isinstance(online(server), list), (
        "The chat page (/) and GET /users must stay on the app, where they were."
    )


@pytest.mark.guide("live.md#sse")
def test_a_new_page_gets_the_room_as_it_is_at_once(server, connect):
    """GET /live/events without a Last-Event-ID answers at once: a `retry:` line, then
    one `count` event with an id, as text/event-stream that no cache keeps."""
    quiet_room(server)
    join(connect)
    join(connect)
    answer = first_answer(server)
    assert answer.seconds < AT_ONCE_SECONDS, (
        f"A new page waited {answer.seconds:.1f} s: with no Last-Event-ID it has seen "
        "nothing yet, so wait_after() returns None at once; answer the count then."
    )
    kinds = [(event.kind, event.data) for event in answer.events]
    assert kinds == [("count", {"count": 2})], (
        f'With 2 in the room, a new page should get one event "count" with data '
        f'{{"count": 2}}, but got {kinds} from:\n{answer.body[:300]}'
    )
    assert answer.last_id, "The count event needs an id: room_events.last_id."
    assert answer.retry_ms is not None, (
        "Start the answer with f'retry: {RETRY_MS}\\n\\n': how soon EventSource asks "
        "again once the answer ends."
    )
    assert answer.headers.get("cache-control") == "no-store", (
        'Answer with the header {"Cache-Control": "no-store"}: a cached answer would '
        "show old news."
    )


@pytest.mark.guide("live.md#publish")
def test_a_waiting_page_hears_who_joins_renames_and_leaves(server, connect):
    """A page that follows the feed hears "joined", "renamed" and "left", each with the
    name, and the count after each join or departure."""
    quiet_room(server)
    first_answer(server)
    page = EventSource(server, FEED)
    try:
        page.wait_for(lambda events: events, "its first answer")
        client, name = join(connect)
        page.wait_for(
            lambda events: any(
                e.kind == "joined" and e.data == {"name": name, "count": 1}
                for e in events
            ),
            f'an event "joined" with data {{"name": "{name}", "count": 1}}: publish '
            "it in add_client, under the lock",
        )
        client.rename("Ada")
        page.wait_for(
            lambda events: any(
                e.kind == "renamed" and e.data == {"name": "Ada", "was": name}
                for e in events
            ),
            f'an event "renamed" with data {{"name": "Ada", "was": "{name}"}}: '
            "publish it in rename()",
        )
        client.close()
        page.wait_for(
            lambda events: any(
                e.kind == "left" and e.data == {"name": "Ada", "count": 0}
                for e in events
            ),
            'an event "left" with data {"name": "Ada", "count": 0}: publish it in '
            "remove_client, once the client is really gone",
        )
    finally:
        page.close()


@pytest.mark.guide("live.md#last-event-id")
def test_pages_that_reconnect_miss_nothing_and_see_nothing_twice(server, connect):
    """Three pages follow the feed while 30 participants come and go at random: each
    page sees every event once, in order (Last-Event-ID), and ends at count 0."""
    quiet_room(server)
    first_answer(server)
    pages = [EventSource(server, FEED) for _ in range(3)]
    try:
        for page in pages:
            page.wait_for(lambda events: events, "its first answer")
        chance, inside, names = random.Random(13), [], []
        for _ in range(30):
            if inside and chance.random() < 0.4:
                inside.pop(chance.randrange(len(inside))).close()
            else:
                client, name = join(connect)
                inside.append(client)
                names.append(name)
        for client in inside:
            client.close()
        quiet_room(server)
        for number, page in enumerate(pages, 1):
            events = page.wait_for(
                lambda events: sum(e.kind == "left" for e in events) >= len(names),
                f"{len(names)} departures",
                timeout=WAIT_SECONDS
                + FEED_WAIT_SECONDS,  # a page may be between two asks
            )
            where = f"Page {number}"
            kinds = [e.kind for e in events]
            assert kinds.count("count") == 1 and kinds[0] == "count", (
                f"{where} started over {kinds.count('count')} times ({kinds[:8]}...): "
                "a page that sends the Last-Event-ID of this run gets the events after "
                "it, never a new count."
            )
            numbers = [int(str(e.id).rpartition(".")[2]) for e in events]
            expected = list(range(numbers[0], numbers[0] + len(numbers)))
            assert numbers == expected, (
                f"{where} saw event ids {numbers}: a gap or a repeat. Answer "
                "wait_after(the request's Last-Event-ID header, ...), not the latest."
            )
            joined = sorted(e.data["name"] for e in events if e.kind == "joined")
            left = sorted(e.data["name"] for e in events if e.kind == "left")
            assert joined == left == sorted(names), (
                f"{where} heard {len(joined)} joins and {len(left)} departures of "
                f"{len(names)} participants who came and went."
            )
            assert events[-1].data["count"] == 0, (
                f"{where} ends at {events[-1].data}, but the room is empty."
            )
    finally:
        for page in pages:
            page.close()


@pytest.mark.guide("live.md#last-event-id")
@pytest.mark.parametrize(
    "stale",
    ["garbage", "0badboot.3", "{boot}.999999"],
    ids=["garbage", "old", "future"],
)
def test_an_id_this_run_cannot_continue_from_starts_over(server, stale):
    """An id from before a restart, from the future, or garbage is answered at once with
    the count and an id of this run: the page starts over, it does not wait."""
    boot = str(first_answer(server).last_id).partition(".")[0]
    answer = first_answer(server, stale.format(boot=boot))
    kinds = [event.kind for event in answer.events]
    assert kinds == ["count"] and answer.seconds < AT_ONCE_SECONDS, (
        f"Last-Event-ID {stale.format(boot=boot)!r} got {kinds} after "
        f"{answer.seconds:.1f} s: when wait_after() returns None, answer the count "
        "with room_events.last_id."
    )
    assert str(answer.last_id).startswith(boot + "."), (
        f"The count after a stale id should carry an id of this run, not "
        f"{answer.last_id!r}."
    )


@pytest.mark.guide("live.md#sse")
def test_with_no_news_a_request_waits_then_answers_none(asked_with_no_news):
    """A page that has seen everything is answered only when there is news, or after
    the wait with no event: it holds no thread meanwhile, then asks again."""
    unvisited, asked = asked_with_no_news
    try:
        seen, answer = asked.result()  # or what went wrong, raised here
        logged = unvisited.problems()
        assert not logged, "The app logged an error meanwhile." + quote_problems(logged)
        assert answer.events == [], (
            f"Nothing happened, yet a page that had seen {seen} got: "
            f"{answer.body[:300]}"
        )
        assert answer.seconds > FEED_WAIT_SECONDS * 0.8, (
            f"With no news the answer came after {answer.seconds:.1f} s, not after the "
            f"wait ({FEED_WAIT_SECONDS} s): `await room_events.wait_after(...)` waits "
            "for news, so the pages do not ask again four times a second for nothing."
        )
    except AssertionError as failed:  # that app is no fixture: its lines, said here
        said = str(failed).split("\nassert ")[0]  # without pytest's introspection
        tail = unvisited.output_tail(8)
        raise CheckFailure(
            f"{said}\n\nThat copy of the app printed last:\n{tail}",
            read=getattr(failed, "read", None),
        ) from None
