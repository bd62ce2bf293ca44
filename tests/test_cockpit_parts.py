"""The cockpit's parts on their own: the folded chat, the QR code, the progress board, the report
rules, the learner's sharing client, the timed plan. The views in Chromium, the simulated class and
make demo are in test_cockpit.py."""

import re
import socket
import sys
import time
import tomllib

import pytest

from workshop import plan, share
from workshop.cockpit import qr
from workshop.cockpit.board import MAX_LEARNERS, BadReport, Board, checks_of
from workshop.cockpit.network import is_local_network, is_loopback
from workshop.cockpit.room import FoldedChat
from workshop.steps import ROOT, STEPS, step

# --- the folded chat ------------------------------------------------------------------


def shown(chat: FoldedChat) -> list[str]:
    return [
        f"{line['username']}: {line['text']}"
        if line["kind"] == "chat"
        else line["text"]
        for line in chat.shown()
    ]


def test_a_join_and_its_rename_fold_into_one_line():
    chat = FoldedChat()
    chat.system("User-18 joined the chat", now=0)
    chat.system("User-18 is now known as Ada", now=0.2)
    assert shown(chat) == ["Ada joined"]


def test_a_burst_of_arrivals_is_one_line_and_names_the_first_few():
    chat = FoldedChat()
    for number, name in enumerate(["Ada", "Grace", "Linus", "Hedy", "Alan", "Ken"]):
        chat.system(f"User-{number} joined the chat", now=number)
        chat.system(f"User-{number} is now known as {name}", now=number + 0.5)
    assert shown(chat) == ["Ada, Grace, Linus and 3 others joined"]
    chat.system("User-9 joined the chat", now=200)  # much later: a line of its own
    assert shown(chat)[-1] == "User-9 joined"


def test_a_rename_after_speaking_stays_a_line_and_leaving_is_grouped():
    chat = FoldedChat()
    chat.system("User-1 joined the chat", now=0)
    chat.chat("User-1", "hello", now=1)
    chat.system("User-1 is now known as Ada", now=2)
    chat.system("Ada left the chat", now=3)
    chat.system("Grace left the chat", now=4)
    assert shown(chat) == [
        "User-1 joined",
        "User-1: hello",
        "User-1 is now known as Ada",
        "Ada and Grace left",
    ]


def test_the_projector_and_its_probe_are_not_shown():
    chat = FoldedChat(hidden={"Projector", "User-1", "User-2"})
    chat.system("User-1 joined the chat", now=0)
    chat.system("User-1 is now known as Projector", now=0)
    chat.system("User-2 left the chat", now=0)
    chat.system("User-3 joined the chat", now=1)
    assert shown(chat) == ["User-3 joined"]


# --- the QR code ----------------------------------------------------------------------


def test_the_terminal_qr_code_draws_segnos_modules_exactly():
    url = "http://192.168.1.20:8000"
    lines = qr.terminal_lines(url, colour=False)
    drawn = []
    for line in lines:
        top = [char in "\u2580\u2588" for char in line]
        bottom = [char in "\u2584\u2588" for char in line]
        drawn += [top, bottom]
    expected = qr.rows(url)
    assert drawn[: len(expected)] == expected
    assert not any(drawn[len(expected) :][0]) if len(drawn) > len(expected) else True
    coloured = qr.terminal_lines(url, colour=True)
    assert all(line.startswith(qr.INK_ON_CARD) for line in coloured)
    # A document of its own (an <img> needs the namespace) that scales (a viewBox).
    assert '<svg xmlns="http://www.w3.org/2000/svg" viewBox="' in qr.svg(url)


# --- the board ------------------------------------------------------------------------


def outcomes(key: str, failing: tuple[int, ...] = ()) -> dict:
    """Step key's checks (their real names), the ones at these positions failing."""
    return {
        check.name: "failed" if number in failing else "passed"
        for number, check in enumerate(checks_of(step(key)))
    }


def report(seat: str, name: str, *steps: tuple[str, dict], complete: bool = True):
    return {
        "seat": seat,
        "name": name,
        "steps": [
            {"step": key, "checks": checks, "complete": complete}
            for key, checks in steps
        ],
    }


def test_the_board_follows_each_learner_to_the_step_they_are_on():
    board = Board(away_seconds=600)
    # make progress: everything at once; step 1 passes, step 2 fails, untouched starters after.
    board.report(
        report(
            "a" * 16,
            "Ada",
            ("1", outcomes("1")),
            ("2", outcomes("2", (0,))),
            ("3", outcomes("3", (0, 1))),
        ),
        now=0,
    )
    ada = board.learners["a" * 16]
    assert ada.current == "2" and ada.since == 0
    assert board.cell(ada, "3")["state"] == "working", "some of step 3 passes already"
    board.report(
        report(
            "c" * 16, "Tom", ("1", outcomes("1", (0,))), ("2", outcomes("2", range(99)))
        ),
        now=0,
    )
    tom = board.learners["c" * 16]
    assert [board.cell(tom, k)["state"] for k in ("1", "2")] == ["working", "none"], (
        "an untouched starter after the current step is not started"
    )
    board.report(report("a" * 16, "Ada", ("2", outcomes("2", (1,)))), now=60)
    assert ada.current == "2" and ada.since == 0, "still on step 2: the clock goes on"
    board.report(report("a" * 16, "Ada", ("2", outcomes("2"))), now=120)
    assert ada.current == "3" and ada.since == 120, "step 2 passes: on to step 3"
    assert board.cell(ada, "2")["state"] == "done"
    total = len(outcomes("3"))
    assert board.cell(ada, "3") == {
        "state": "working",
        "passed": total - 2,
        "total": total,
    }

    # A run of one check (-k) only updates that check.
    one = next(iter(outcomes("3")))
    board.report(
        report("a" * 16, "Ada", ("3", {one: "passed"}), complete=False), now=130
    )
    assert board.cell(ada, "3")["passed"] == total - 1 and ada.current == "3"

    # Skipped checks (no Chromium on this laptop) do not hold a step back.
    skipped = {name: "skipped" for name in outcomes("5")}
    skipped[next(iter(skipped))] = "passed"
    board.report(report("b" * 16, "Sam", ("5", skipped)), now=0)
    assert board.cell(board.learners["b" * 16], "5")["state"] == "done"


def test_stuck_longest_and_the_check_failing_for_most_of_the_room():
    board = Board(away_seconds=350)
    first_failing = checks_of(step("4"))[0]
    board.report(
        report("01" * 8, "Kay", ("2", outcomes("2", (0,)))), now=0
    )  # then leaves
    board.report(report("02" * 8, "Ada", ("4", outcomes("4", (0, 1)))), now=100)
    board.report(report("03" * 8, "Grace", ("4", outcomes("4", (0,)))), now=200)
    board.report(report("04" * 8, "Linus", ("5", outcomes("5", (0,)))), now=300)
    board.report(report("05" * 8, "Hedy", ("4", outcomes("4", (0,)))), now=350)
    state = board.snapshot(now=400)

    assert state["active"] == 4 and state["away"] == 1
    assert [row["name"] for row in state["learners"]] == [
        "Ada",
        "Grace",
        "Hedy",
        "Kay",
        "Linus",
    ]
    assert next(row for row in state["learners"] if row["name"] == "Kay")["away"]
    assert [(s["name"], s["step"], s["seconds"]) for s in state["stuck"]] == [
        ("Ada", "4", 300),
        ("Grace", "4", 200),
        ("Linus", "5", 100),
        ("Hedy", "4", 50),
    ], "longest first, and Kay, away, is not stuck"
    top = state["failing"][0]
    assert (top["check"], top["count"], top["on_step"], top["room"]) == (
        first_failing.name,
        3,
        3,
        4,
    )
    assert top["explain_now"] and top["doc"] == first_failing.doc
    assert top["guide_url"] == "http://127.0.0.1:8001/step4/#broadcast"
    assert not any(entry["step"] == "2" for entry in state["failing"]), "Kay is away"


def test_a_lone_failure_is_no_reason_to_stop_the_room():
    board = Board()
    board.report(report("01" * 8, "Ada", ("4", outcomes("4", (0,)))), now=0)
    for seat in range(2, 6):
        board.report(report(f"{seat:02d}" * 8, f"L{seat}", ("4", outcomes("4"))), now=0)
    assert not board.snapshot(now=1)["failing"][0]["explain_now"]


@pytest.mark.parametrize(
    "bad, says",
    [
        ([], "JSON object"),
        ({"seat": "x", "name": "Ada", "steps": []}, "seat number"),
        ({"seat": "ab" * 8, "name": " ", "steps": []}, "name is needed"),
        ({"seat": "ab" * 8, "name": "A" * 33, "steps": [{}]}, "at most 32"),
        ({"seat": "ab" * 8, "name": "A\nB", "steps": [{}]}, "printable"),
        ({"seat": "ab" * 8, "name": "Ada", "steps": []}, "lists the steps"),
        (
            {"seat": "ab" * 8, "name": "Ada", "steps": [{"step": "99", "checks": {}}]},
            "git pull",
        ),
        (
            {
                "seat": "ab" * 8,
                "name": "Ada",
                "steps": [{"step": "4", "checks": {"rm -rf": "passed"}}],
            },
            "check names",
        ),
        (
            {
                "seat": "ab" * 8,
                "name": "Ada",
                "steps": [{"step": "4", "checks": {"test_x": "won"}}],
            },
            "passed/failed",
        ),
    ],
)
def test_a_malformed_report_is_refused_with_the_reason(bad, says):
    board = Board()
    with pytest.raises(BadReport, match=re.escape(says)):
        board.report(bad)
    assert not board.learners


def test_the_board_has_a_limit_and_the_csv_keeps_names_as_text():
    board = Board()
    for seat in range(MAX_LEARNERS):
        board.report(report(f"{seat:016x}", f"L{seat}", ("1", outcomes("1"))), now=0)
    with pytest.raises(BadReport, match="full"):
        board.report(report("f" * 16, "One too many", ("1", outcomes("1"))))
    small = Board()
    small.report(report("ab" * 8, '=HYPERLINK("x")', ("1", outcomes("1"))), now=0)
    rows = small.csv_text().splitlines()
    assert rows[0].startswith("name,step,title,checks passed")
    assert rows[1].startswith('"\'=HYPERLINK(""x"")",1,Project setup,')


def test_only_this_machine_and_private_networks_count_as_the_room():
    assert is_local_network("192.168.1.20") and is_local_network("10.0.0.3")
    assert is_local_network("127.0.0.1") and is_local_network("::ffff:172.16.0.9")
    assert not is_local_network("8.8.8.8") and not is_local_network("nonsense")
    assert is_loopback("127.0.0.2") and not is_loopback("192.168.1.20")


# --- the learner's side ---------------------------------------------------------------


def test_make_share_accepts_lan_addresses_only():
    assert share.parse_address("192.168.1.20") == ("192.168.1.20", 8002)
    assert share.parse_address("http://10.0.0.5:9000/") == ("10.0.0.5", 9000)
    share.local_network_only("192.168.1.20")
    with pytest.raises(share.ShareError, match="LAN only"):
        share.local_network_only("8.8.8.8")  # refused before any traffic
    with pytest.raises(share.ShareError, match="not a port"):
        share.parse_address("10.0.0.5:http")


def test_a_machine_that_never_answers_costs_the_learner_one_second_and_one_line():
    """A laptop asleep on the LAN accepts nothing; this socket accepts the connection and then
    never answers, the worst case for a client."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        setting = {
            "host": "127.0.0.1",
            "port": silent.getsockname()[1],
            "name": "Ada",
            "seat": "ab" * 8,
        }
        started = time.monotonic()
        line = share.send(
            [{"step": "1", "checks": outcomes("1"), "complete": True}], setting
        )
        took = time.monotonic() - started
    assert took < share.SEND_SECONDS + 0.5, (
        f"sharing held the learner up for {took:.2f} s"
    )
    assert (
        line.startswith("Progress not shared: the instructor's machine")
        and "\n" not in line
    )
    assert "make share OFF=1" in line

    with socket.socket() as closed:  # nobody listens: refused at once
        closed.bind(("127.0.0.1", 0))
        setting["port"] = closed.getsockname()[1]
    line = share.send(
        [{"step": "1", "checks": outcomes("1"), "complete": True}], setting
    )
    assert "nothing answers" in line and "dashboard running" in line, line


def test_parametrized_checks_count_once_and_a_failure_wins():
    assert share.combine(
        {
            "test_a[x]": "passed",
            "test_a[y]": "failed",
            "test_b": "skipped",
            "test_c[1]": "passed",
        }
    ) == {"test_a": "failed", "test_b": "skipped", "test_c": "passed"}


# --- the timed plan -------------------------------------------------------------------


def test_every_session_fits_and_typed_steps_take_course_toml_minutes():
    plans = tomllib.loads(plan.PLAN_FILE.read_text())
    assert plan.sessions() == [90, 180]
    for minutes in plan.sessions():
        slots = plan.slots(minutes)
        assert sum(slot.minutes for slot in slots) == minutes
        assert slots[-1].what == "Slack" and slots[-1].minutes >= 0
        session = next(s for s in plans["session"] if s["minutes"] == minutes)
        for course_step in STEPS:
            slot = next(
                s
                for s in slots
                if s.what.endswith(f" {course_step.key}: {course_step.title}")
            )
            mode = session["steps"][course_step.key]
            expected = {
                "type": course_step.minutes,
                "paste": plans["paste_minutes"],
                "watch": plans["watch_minutes"],
                "after": 0,
            }[mode]
            assert (slot.mode, slot.minutes) == (mode, expected)
    assert "| 0:00 | 5 | Welcome |" in plan.markdown_table(90)
    assert "[the step2 page](step2.md)" in plan.markdown_table(90)
    # The instructor page shows both (docs/hooks/timed_plan.py), indented inside its tabs.
    page = (ROOT / "docs" / "instructor.md").read_text()
    assert (
        "    <!-- timed-plan 90 -->" in page and "    <!-- timed-plan 180 -->" in page
    )
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import timed_plan
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))
    shown = timed_plan.on_page_markdown(
        "=== x\n\n    <!-- timed-plan 180 -->\n", None, None, None
    )
    assert shown.splitlines()[2:] == [
        "    " + row for row in plan.markdown_table(180).splitlines()
    ]
    with pytest.raises(ValueError, match="no 60-minute session"):
        plan.slots(60)
