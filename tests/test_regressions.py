"""Defects a maintainer found in the tooling (issue 15), each pinned by a check that failed
before its fix: the servers' log files, screenshots that dirtied the tree, two servers
that picked the same free port, and a crowd that a busy machine counted slowly."""

import io
import re
import shutil
import socket
import time

import pytest
from PIL import Image, ImageDraw

from workshop import harness, ports
from workshop.harness import start_server
from workshop.steps import ROOT, step

SCREENSHOT = ROOT / "docs" / "screenshots" / "step5.png"


def test_the_checks_leave_no_server_log_behind(run_checks, tmp_path):
    """Each checked server logged to a /tmp/chat-server-*.log that nobody removed."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run = run_checks(
        [step(1).starter_dir], step(1).solution_dir, {"TMPDIR": str(scratch)}
    )
    assert run.exit_status == 0, run.output[-3000:]
    left = sorted(path.name for path in scratch.glob("chat-server-*"))
    assert not left, f"the checks left {len(left)} log files: {left[:5]}"


def test_a_server_that_fails_to_start_still_shows_its_output_and_leaves_no_log(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    app = tmp_path / "broken"
    app.mkdir()
    (app / "app.py").write_text("raise SystemExit('this app refuses to start')\n")
    with pytest.raises(AssertionError, match="this app refuses to start"):
        start_server(app)
    assert not list(tmp_path.glob("chat-server-*")), list(tmp_path.iterdir())


class _Page:
    """What ChatTab needs of a Playwright page, with a screenshot given in advance."""

    def __init__(self, picture: bytes):
        self.picture = picture

    def on(self, event, handler):
        pass

    def screenshot(self, **options) -> bytes:
        return self.picture


def _save_as_a_tab_would(picture: bytes, path) -> None:
    from workshop.browser import ChatTab  # here: test_end_to_end loads it as a plugin

    ChatTab(_Page(picture), "tab 1").screenshot(path)


def _png(image: Image.Image, **options) -> bytes:
    encoded = io.BytesIO()
    image.save(encoded, format="PNG", **options)
    return encoded.getvalue()


def test_a_screenshot_from_another_machine_that_looks_the_same_is_not_rewritten(
    tmp_path,
):
    """`make test` rewrote docs/screenshots/*.png whenever Chromium's bytes differed."""
    saved = tmp_path / "step5.png"
    shutil.copy(SCREENSHOT, saved)
    image = Image.open(SCREENSHOT).convert("RGBA")
    # Another encoder, and the faint differences another machine's rasteriser leaves.
    for x in range(0, image.width, 7):
        red, green, blue, alpha = image.getpixel((x, image.height // 2))
        image.putpixel((x, image.height // 2), (red ^ 3, green ^ 2, blue, alpha))
    other_machine = _png(image, compress_level=1)
    assert other_machine != SCREENSHOT.read_bytes()
    _save_as_a_tab_would(other_machine, saved)
    assert saved.read_bytes() == SCREENSHOT.read_bytes(), (
        "a screenshot that looks the same was rewritten: the tree would be dirty"
    )


def test_a_screenshot_that_changed_is_saved(tmp_path):
    saved = tmp_path / "step5.png"
    shutil.copy(SCREENSHOT, saved)
    image = Image.open(SCREENSHOT).convert("RGBA")
    # A new line of chat, say: a block of the page that looks different.
    ImageDraw.Draw(image).rectangle((20, 20, 220, 60), fill=(200, 30, 30, 255))
    changed = _png(image)
    _save_as_a_tab_would(changed, saved)
    assert saved.read_bytes() == changed, "a screenshot that changed was not saved"
    other_size = _png(image.resize((image.width // 2, image.height // 2)))
    _save_as_a_tab_would(other_size, saved)
    assert saved.read_bytes() == other_size, "a resized screenshot was not saved"


def test_no_workshop_code_reads_proc_itself():
    """Leftover servers were found through /proc, which macOS and Windows lack: the
    workshop asks psutil instead, which knows each system."""
    sources = [
        *ROOT.glob("workshop/**/*.py"),
        *ROOT.glob("bench/*.py"),
        *ROOT.glob("tests/*.py"),
    ]
    readers = [
        path.relative_to(ROOT).as_posix()
        for path in sources
        if path.name != "test_regressions.py"
        and re.search(r"[\"']/proc\b", path.read_text(encoding="utf-8"))
    ]
    assert not readers, f"these read /proc themselves: {readers}"


@pytest.mark.parametrize(
    "direct", [True, False], ids=["python app.py", "workshop.serve"]
)
def test_a_server_moves_on_when_another_took_its_free_port_meanwhile(
    direct, monkeypatch
):
    """Seen once in CI: two checks running side by side got the same free port, Cello
    shared it without a word, and POST /login reached the other app (404)."""
    with socket.socket() as other:  # another server, sharing as Cello does
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        # A port picked where none can be held (Windows), and taken meanwhile.
        ports = iter([(taken, None)])
        picked = harness.reserve_port
        monkeypatch.setattr(
            harness, "reserve_port", lambda host: next(ports, None) or picked(host)
        )
        server = start_server(step(7).solution_dir, direct=direct)
        try:
            assert server.port != taken
            assert harness.listeners(server.port) and not server._shares_its_port()
            assert server.get_json("/users")["count"] == 0
        finally:
            server.stop()


def test_a_port_picked_for_a_server_is_nobody_elses_until_it_listens():
    """Where it can, the harness holds the port it picked until its server listens: a
    bind without SO_REUSEPORT is refused meanwhile (so is the kernel's free-port pick),
    and Cello, which sets SO_REUSEPORT, binds beside the holder."""
    port, holder = ports.reserve_port()
    if holder is None:
        pytest.skip("off Linux the harness asks who listens instead (ports.py)")
    with holder, socket.socket() as probe, pytest.raises(OSError):
        probe.bind(("127.0.0.1", port))
    app = step(7).solution_dir
    server = harness.ChatServer(app, harness.server_command(app, direct=True))
    try:
        assert server._reservation is not None, (
            "the port should be held while it starts"
        )
        server.wait_until_accepting()
        assert server._reservation is None, "the port should be let go once it listens"
        assert server.get_json("/users")["count"] == 0
    finally:
        server.stop()


class _Crowd:
    """GET /users of a server that counts a crowd of 600: `step` more at each look, up
    to `stall`."""

    def __init__(self, step: int, stall: int = 600):
        self.count, self.step, self.stall = 0, step, stall

    def get_json(self, path: str) -> dict:
        self.count = min(self.count + self.step, self.stall)
        return {"count": self.count}


def test_a_crowd_counted_slowly_is_waited_for_and_a_full_pool_is_not(monkeypatch):
    """Seen in make test: the scale solution counted its 600 in more than the 3 s a
    check waits. The count is waited for while it grows; once it stalls (a full
    thread pool), the check fails after the usual wait."""
    monkeypatch.setattr(harness, "WAIT_SECONDS", 0.2)
    started = time.monotonic()
    assert harness._count_while_it_grows(_Crowd(step=30), 600) == 600
    assert time.monotonic() - started > 0.2, "the crowd should have counted slowly"
    started = time.monotonic()
    assert harness._count_while_it_grows(_Crowd(step=100, stall=500), 600) == 500
    assert 0.2 < time.monotonic() - started < 0.6
