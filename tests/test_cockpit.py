"""The instructor's cockpit, used for real: make demo of any checkpoint, the projector view and the
class dashboard in Chromium (with the screenshots the instructor page shows), a class of simulated
learners reporting to a real dashboard (two of them through `make share` and `make check` in clones
of their own: one whose instructor's machine never answers), and `git pull` mid-session."""

import json
import os
import re
import secrets
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from test_instructor_tools import _printed, read_until

# The `upstream` fixture: the workshop as this working tree has it, what a learner clones.
from test_tools import GIT_AS_LEARNER, make, run
from test_tools import upstream as upstream  # noqa: F401, PLC0414

from workshop import share
from workshop.bots import NAMES
from workshop.cockpit.board import checks_of
from workshop.cockpit.server import tell_cockpit
from workshop.harness import POLL_MS, eventually, join, start_server
from workshop.pictures import save_if_changed
from workshop.ports import free_port, port_is_free
from workshop.steps import ROOT, finished, step

pytest_plugins = ["workshop.browser"]

PROJECTOR = {"width": 1280, "height": 720}
SCREENSHOTS = ROOT / "docs" / "screenshots"
# Shown on the projector screenshot in place of this machine's address.
JOIN_URL = "http://192.168.1.20:8000"
WAIT = 20


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def save_screenshot(page, name: str) -> Path:
    """docs/screenshots/NAME, rewritten only when the picture changed (mkdocs serve watches docs/)."""
    path = SCREENSHOTS / name
    save_if_changed(path, page.screenshot(animations="disabled", caret="hide"))
    return path


def start_cockpit(background, chat_url: str, *options: str) -> str:
    port = free_port()
    cockpit = background(
        [
            sys.executable,
            "-m",
            "workshop",
            "dashboard",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--chat",
            chat_url,
            *options,
        ]
    )
    read_until(cockpit.process, r"Nothing is saved")
    return f"http://127.0.0.1:{port}"


# --- make demo N ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "chosen, label, can",
    [
        (
            ["1"],
            "step 1 (Project setup)",
            "Nothing to join yet: the WebSocket handler is step 3.",
        ),
        (
            ["3"],
            "step 3 (The WebSocket handler)",
            "hears only its own messages: the broadcast is step 4",
        ),
        (
            ["N=5"],
            "step 5 (The HTML chat client)",
            "the projector counts the arrivals it hears",
        ),
    ],
)
def test_make_demo_serves_any_checkpoint_and_says_what_the_room_can_do(
    background, chosen, label, can
):
    port, cockpit_port = free_port(), free_port()
    demo = background(
        ["make", "--no-print-directory", "demo", *chosen, f"PORT={port}"],
        env={"COCKPIT_PORT": str(cockpit_port)},
    )
    printed = "".join(read_until(demo.process, r"^What the room can do", timeout=40))
    assert f"Serving {label} on port {port}. Ask the room to open:" in printed, printed
    assert "\u2588" in printed, f"no QR code next to the addresses:\n{printed}"
    printed += "".join(
        read_until(demo.process, r"^\(No participant count|participants$")
    )
    assert can in printed, printed
    assert f"Projector view: http://127.0.0.1:{cockpit_port}/projector" in printed
    room = get_json(f"http://127.0.0.1:{cockpit_port}/api/room")
    assert room["checkpoint"]["key"] == chosen[0].removeprefix("N=")
    if chosen == ["N=5"]:  # no GET /users yet: counted from what the projector hears
        from websockets.sync.client import connect

        with (
            connect(f"ws://127.0.0.1:{port}/ws/chat"),
            connect(f"ws://127.0.0.1:{port}/ws/chat"),
        ):
            read_until(demo.process, r"\b2 participants \(\+")
        read_until(demo.process, r"\b0 participants \(-")
    else:
        assert "(No participant count at this checkpoint" in printed
    exit_status, output = demo.interrupt()
    output += "".join(
        _printed[demo.process.pid].queue
    )  # what the reading thread got first
    assert exit_status in (0, -2) and "Traceback" not in output, output
    assert port_is_free(port, "0.0.0.0") and port_is_free(cockpit_port, "0.0.0.0")


def test_make_demo_hands_its_chat_to_a_running_dashboard(background):
    port = free_port()
    cockpit = start_cockpit(background, f"http://127.0.0.1:{port}")
    demo = background(
        ["make", "--no-print-directory", "demo", "6", f"PORT={port}"],
        env={"COCKPIT_PORT": cockpit.rsplit(":", 1)[1]},
    )
    printed = "".join(read_until(demo.process, r"\b0 participants", timeout=40))
    assert f"Projector view: {cockpit}/projector" in printed, printed
    room = get_json(f"{cockpit}/api/room")
    assert room["checkpoint"]["key"] == "6" and room["abilities"]["users"], room
    assert room["counted_from"] == "users" and room["count"] == 0, room
    demo.interrupt()
    # The dashboard outlives the demo, and says the chat stopped.
    eventually(
        lambda: not get_json(f"{cockpit}/api/room")["connected"],
        "the chat to stop",
        WAIT,
    )


# --- the projector view ---------------------------------------------------------------

CONVERSATION = [
    ("Ada", "Hello from the front row!"),
    ("Grace", "Joined from my phone through the QR code."),
    ("Linus", "Can everyone read the projector from the back?"),
    ("Hedy", "Yes, loud and clear."),
    ("Alan", "Step 4 passes for me: everyone hears everyone."),
    ("Katherine", "Who else is on step 5?"),
]


def test_the_projector_view_shows_how_to_join_who_is_online_and_a_quiet_chat(
    background, new_browser_context
):
    with start_server(finished().solution_dir, direct=True) as chat:
        cockpit = start_cockpit(background, chat.url, "--join-url", JOIN_URL)
        eventually(
            lambda: get_json(f"{cockpit}/api/room")["connected"],
            "the projector to join",
            WAIT,
        )
        checkpoint = finished()
        assert tell_cockpit(
            int(cockpit.rsplit(":", 1)[1]),
            {
                "chat_url": chat.url,
                "checkpoint": {
                    "key": checkpoint.key,
                    "title": checkpoint.title,
                    "label": checkpoint.label.capitalize(),
                },
            },
        )
        names = NAMES[:20]
        clients = {}
        for name in names:  # one at a time, so that the screenshot is the same each run
            clients[name], _ = join(chat.connect)
            clients[name].rename(name)
            clients[name].wait_for_system(f"is now known as {name}")
        eventually(
            lambda: get_json(f"{cockpit}/api/room")["count"] == 20,
            "20 in the room",
            WAIT,
        )
        for name, text in CONVERSATION:
            clients[name].say(text)
            eventually(
                lambda text=text: (
                    text in json.dumps(get_json(f"{cockpit}/api/room")["lines"])
                ),
                f"{text!r} on the projector",
                WAIT,
            )

        page = new_browser_context(viewport=PROJECTOR).new_page()
        page.goto(f"{cockpit}/projector")
        page.wait_for_function(
            "text => document.getElementById('lines').textContent.includes(text)"
            " && document.getElementById('count').textContent.startsWith('20 in the room')",
            arg=CONVERSATION[-1][1],
            timeout=WAIT * 1000,
            polling=POLL_MS,
        )
        lines = page.locator("#lines .line").all_inner_texts()
        assert lines[0] == "Ada, Grace, Linus and 17 others joined", lines
        assert not [line for line in lines if "known as" in line or "User-" in line], (
            lines
        )
        assert page.locator("#join").inner_text() == "192.168.1.20:8000"
        assert (
            page.locator("#checkpoint").inner_text()
            == f"Chapter {checkpoint.key}: {checkpoint.title}"
        )
        assert sorted(
            page.locator("#online span").all_inner_texts(), key=str.casefold
        ) == sorted(names, key=str.casefold)
        # Readable from the back of a room: large type, a large code, nothing cut off.
        sizes = page.evaluate(
            """() => ({
                join: parseFloat(getComputedStyle(document.getElementById('join')).fontSize),
                chat: parseFloat(getComputedStyle(document.querySelector('.line.chat')).fontSize),
                qr: document.querySelector('#qr img').getBoundingClientRect().width,
                qrLoaded: document.querySelector('#qr img').complete
                    && document.querySelector('#qr img').naturalWidth > 0,
                scrollWidth: document.documentElement.scrollWidth,
                scrollHeight: document.documentElement.scrollHeight,
            })"""
        )
        assert sizes["join"] >= 48 and sizes["chat"] >= 28 and sizes["qr"] >= 280, sizes
        assert sizes["qrLoaded"], sizes
        assert sizes["scrollWidth"] <= 1280 and sizes["scrollHeight"] <= 720, sizes
        save_screenshot(page, "projector.png")

        # A newcomer: "User-21 joined" + "User-21 is now known as Mary" is one line, live.
        chat.connect().rename("Mary")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#lines .line')].some(l => l.textContent === 'Mary joined')",
            timeout=WAIT * 1000,
            polling=POLL_MS,
        )
        page.wait_for_function(
            "() => document.getElementById('count').textContent.startsWith('21 in the room')",
            timeout=WAIT * 1000,
            polling=POLL_MS,
        )


def test_the_views_are_for_this_machine_and_reports_for_the_lan_only(background):
    cockpit = start_cockpit(background, f"http://127.0.0.1:{free_port()}")
    for path in ("/projector", "/dashboard", "/api/board", "/export.csv", "/qr.svg"):
        with urllib.request.urlopen(cockpit + path, timeout=5) as answer:
            assert answer.status == 200, path
    request = urllib.request.Request(
        f"{cockpit}/api/report",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400 and "not JSON" in refused.value.read().decode()


# --- the class dashboard, with simulated learners -------------------------------------


def outcomes(key: str, failing: tuple[int, ...] = ()) -> dict:
    return {
        check.name: "failed" if number in failing else "passed"
        for number, check in enumerate(checks_of(step(key)))
    }


class SimulatedLearner:
    """A learner's laptop, reporting through the same client as `make check` does."""

    def __init__(self, name: str, cockpit: str):
        host, port = cockpit.removeprefix("http://").split(":")
        self.setting = {
            "host": host,
            "port": int(port),
            "name": name,
            "seat": secrets.token_hex(8),
        }

    def checks(self, *steps: tuple[str, dict]) -> str:
        line = share.send(
            [
                {"step": key, "checks": checks, "complete": True}
                for key, checks in steps
            ],
            self.setting,
        )
        assert line.startswith("Shared with the instructor"), line
        return line


def learner_clone(source: Path, where: Path) -> Path:
    assert (
        run(["git", "clone", "-q", str(source), str(where)], where.parent).returncode
        == 0
    )
    (where / ".venv").symlink_to(ROOT / ".venv")
    os.utime(
        where / "requirements.txt", (0, 0)
    )  # never reinstall into the shared .venv
    return where


def test_a_class_reports_to_a_real_dashboard(
    background, new_browser_context, upstream, tmp_path
):
    cockpit = start_cockpit(
        background, f"http://127.0.0.1:{free_port()}", "--away-minutes", "0.15"
    )
    cockpit_port = cockpit.rsplit(":", 1)[1]

    # Two real learners: `make share` and `make check 1` in clones of their own. Radia's tools
    # reach the dashboard; Tim's instructor machine accepts connections and never answers.
    radia, tim = (
        learner_clone(upstream, tmp_path / "radia"),
        learner_clone(upstream, tmp_path / "tim"),
    )
    shared = make(radia, "share", f"HOST=127.0.0.1:{cockpit_port}", "NAME=Radia")
    assert (
        shared.returncode == 0
        and "The instructor's dashboard answered." in shared.stdout
    ), shared.output
    assert (
        json.loads((radia / ".workshop-state/share.json").read_text())["name"]
        == "Radia"
    )
    status = run(["git", "status", "--porcelain"], radia).stdout.splitlines()
    assert [line for line in status if not line.endswith(".venv")] == [], status
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    unreachable = make(
        tim, "share", f"HOST=127.0.0.1:{silent.getsockname()[1]}", "NAME=Tim"
    )
    assert unreachable.returncode == 0 and "Nothing answers at" in unreachable.stdout, (
        unreachable.output
    )
    assert make(tim, "share").stdout.startswith(
        "Sharing your check results with 127.0.0.1:"
    )
    refused = make(tim, "share", "HOST=8.8.8.8", "NAME=Tim")
    assert refused.returncode != 0 and "LAN only" in refused.output, refused.output

    # Kay reports once, and goes away: once the dashboard says so, the others work on.
    kay = SimulatedLearner("Kay", cockpit)
    kay.checks(("1", outcomes("1")), ("2", outcomes("2", (0,))))
    eventually(
        lambda: get_json(f"{cockpit}/api/board")["away"] == 1, "Kay to be away", WAIT
    )

    runs = {}

    def check_step_1(name, clone):
        runs[name] = make(clone, "check", "1")

    real = [
        threading.Thread(target=check_step_1, args=item)
        for item in (("Radia", radia), ("Tim", tim))
    ]
    for thread in real:
        thread.start()
    for thread in real:
        thread.join()

    # The simulated ones, in the order they got stuck.
    ada, grace, hedy, linus = (
        SimulatedLearner(n, cockpit) for n in ("Ada", "Grace", "Hedy", "Linus")
    )
    for learner in (ada, grace, hedy, linus):
        learner.checks(*((key, outcomes(key)) for key in ("1", "2", "3")))
    ada.checks(("4", outcomes("4", (0, 1))))
    grace.checks(("4", outcomes("4", (0,))))
    hedy.checks(("4", outcomes("4", (0,))))
    linus.checks(("4", outcomes("4")), ("5", outcomes("5", (1,))))

    assert (
        runs["Radia"].returncode == 2
        and "Shared with the instructor as Radia (step 1: 0/" in runs["Radia"].stdout
    ), runs["Radia"].output
    note = [
        line
        for line in runs["Tim"].output.splitlines()
        if "Progress not shared" in line
    ]
    assert runs["Tim"].returncode == 2 and len(note) == 1, runs["Tim"].output
    assert "did not answer within 1 s" in note[0], note
    silent.close()

    page = new_browser_context(viewport=PROJECTOR).new_page()
    page.goto(f"{cockpit}/dashboard")
    page.wait_for_function(
        "() => document.querySelectorAll('#grid tbody tr').length === 6"
        " && document.querySelector('#grid tbody tr.away') !== null",
        timeout=WAIT * 1000,
        polling=POLL_MS,
    )
    rows = page.locator("#grid tbody tr").evaluate_all(
        "rows => rows.map(r => [r.cells[0].textContent, r.className,"
        " [...r.querySelectorAll('td[data-step]')].map(c => c.dataset.state + ' ' + c.textContent)])"
    )
    by_name = {name: (kind, cells) for name, kind, cells in rows}
    assert sorted(by_name) == ["Ada", "Grace", "Hedy", "Kay", "Linus", "Radia"], by_name
    assert "Tim" not in by_name
    assert by_name["Kay"][0] == "away"
    assert by_name["Ada"][1][:4] == [
        "done ✓",
        "done ✓",
        "done ✓",
        f"working {len(outcomes('4')) - 2}/{len(outcomes('4'))}",
    ]
    assert by_name["Radia"][1][0] == f"working 0/{len(outcomes('1'))}"
    assert by_name["Radia"][1][1:] == ["none "] * (len(by_name["Radia"][1]) - 1)

    first = checks_of(step("4"))[0]
    explain = page.locator("#explain").inner_text()
    assert f"Stop and explain: 3 of 5 fail “{first.doc}” (step 4)" in explain, explain
    assert (
        page.locator("#explain a").get_attribute("href")
        == "http://127.0.0.1:8001/step4/#broadcast"
    )
    stuck = page.locator("#stuck li strong").all_inner_texts()
    assert stuck == ["Radia", "Ada", "Grace", "Hedy", "Linus"], stuck
    # Every step and chapter and the side panels fit the projector, nothing cut off.
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PROJECTOR["width"], f"the dashboard is {width} px wide"
    box = page.evaluate(
        "() => { const b = document.getElementById('grid-box');"
        " return [b.scrollWidth, b.clientWidth]; }"
    )
    assert box[0] <= box[1], f"the grid needs {box[0]} px, has {box[1]}"
    save_screenshot(page, "dashboard.png")

    # A check result, from the learner's send to the dashboard's page.
    started = time.monotonic()
    grace.checks(("4", outcomes("4")))
    page.wait_for_function(
        "() => [...document.querySelectorAll('#grid tbody tr')].some(r => r.cells[0].textContent === 'Grace'"
        " && r.querySelector('td[data-step=\"4\"]').dataset.state === 'done')",
        timeout=WAIT * 1000,
        polling=POLL_MS,
    )
    print(
        f"a check result reached the dashboard's page in {1000 * (time.monotonic() - started):.0f} ms"
    )

    with urllib.request.urlopen(f"{cockpit}/export.csv", timeout=5) as answer:
        exported = answer.read().decode()
    assert exported.splitlines()[0].startswith("name,step,title")
    assert re.search(
        r"^Grace,4,Broadcast to every client,(\d+),\1,yes,no,", exported, re.M
    ), exported


# --- git pull mid-session -------------------------------------------------------------


def git(clone: Path, *arguments: str):
    return run([*GIT_AS_LEARNER, *arguments], clone)


def test_git_pull_mid_session_keeps_the_learners_edits(upstream, tmp_path):
    """What the instructor page tells instructors: a fix to a file learners do not edit reaches
    everybody; plain `git pull` refuses where a learner committed; `git pull --no-rebase
    --autostash` brings the fix in and keeps every edit, committed or not."""
    instructor = tmp_path / "instructor"
    assert (
        run(["git", "clone", "-q", str(upstream), str(instructor)], tmp_path).returncode
        == 0
    )
    edits = {}
    learners = {}
    for name in ("typing", "committed", "same-file"):
        learners[name] = clone = tmp_path / name
        assert (
            run(
                ["git", "clone", "-q", str(instructor), str(clone)], tmp_path
            ).returncode
            == 0
        )
        app = clone / "steps/step4/app.py"
        edits[name] = app.read_text() + f"\n# {name}'s own work\n"
        app.write_text(edits[name])
    assert git(learners["committed"], "commit", "-qam", "My step 4").returncode == 0

    # The instructor's fix, in the harness (nobody edits it) and at the top of a starter.
    harness = instructor / "workshop/harness.py"
    harness.write_text(harness.read_text() + "\n# the instructor's fix\n")
    starter = instructor / "steps/step4/app.py"
    starter.write_text(
        '"""Fixed docstring."""\n' + starter.read_text().split("\n", 1)[1]
    )
    assert git(instructor, "commit", "-qam", "Fix").returncode == 0

    def fixed(clone: Path) -> bool:
        return "the instructor's fix" in (clone / "workshop/harness.py").read_text()

    # Uncommitted edits to files the fix does not touch: plain git pull is enough.
    typing = learners["typing"]
    git(typing, "checkout", "steps/step4/app.py")  # this one only edits another step
    (typing / "steps/step5/app.py").write_text(
        (typing / "steps/step5/app.py").read_text() + "# mine\n"
    )
    pulled = git(typing, "pull")
    assert pulled.returncode == 0 and fixed(typing), pulled.stderr
    assert (typing / "steps/step5/app.py").read_text().endswith("# mine\n")

    # A learner who committed: plain git pull stops (divergent branches) and changes nothing.
    committed = learners["committed"]
    pulled = git(committed, "pull")
    assert pulled.returncode != 0 and "divergent branches" in pulled.stderr, (
        pulled.stderr
    )
    assert not fixed(committed)
    pulled = git(committed, "pull", "--no-rebase", "--autostash")
    assert pulled.returncode == 0 and fixed(committed), pulled.stdout + pulled.stderr
    app = (committed / "steps/step4/app.py").read_text()
    assert app.startswith('"""Fixed docstring."""') and "committed's own work" in app

    # Uncommitted edits to the file the fix touches: plain git pull refuses, nothing lost;
    # with --autostash the fix and the edit merge (different lines).
    same = learners["same-file"]
    pulled = git(same, "pull")
    assert pulled.returncode != 0 and "would be overwritten" in pulled.stderr, (
        pulled.stderr
    )
    assert (same / "steps/step4/app.py").read_text() == edits["same-file"]
    pulled = git(same, "pull", "--no-rebase", "--autostash")
    assert pulled.returncode == 0 and fixed(same), pulled.stdout + pulled.stderr
    app = (same / "steps/step4/app.py").read_text()
    assert app.startswith('"""Fixed docstring."""') and "same-file's own work" in app

    # The same line changed on both sides: a conflict, and the learner's edit waits in the stash.
    (same / "steps/step4/app.py").write_text(
        '"""My docstring."""\n' + app.split("\n", 1)[1]
    )
    starter.write_text('"""Fixed again."""\n' + starter.read_text().split("\n", 1)[1])
    assert git(instructor, "commit", "-qam", "Fix again").returncode == 0
    pulled = git(same, "pull", "--no-rebase", "--autostash")
    said = pulled.stdout + pulled.stderr
    assert "Your changes are safe in the stash" in said, said
    assert "My docstring" in git(same, "stash", "show", "-p").stdout
