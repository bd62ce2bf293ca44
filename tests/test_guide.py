"""The guide (mkdocs) builds strictly, shows every step's real code, and cannot drift from it."""

import ast
import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workshop.starters import RUN_TIME_FILES
from workshop.steps import ROOT, STEPS

# Guide sections named by the step checks and the workshop tools, e.g. "step3.md#bad-input". Lower case
# only, as page names and anchors are: a placeholder such as "stepN.md#anchor" in a comment is no reference.
GUIDE_REFERENCE = re.compile(r"\b([a-z0-9-]+)\.md#([a-z0-9-]+)")
PROBE = 'GUIDE_DRIFT_PROBE = "changed in solutions/step4 only"'

# The settings whose values the guide's prose states (in words, so no include can keep them in step):
# (file, constant, the value the guide gives, the pages that give it).
NUMBERS_IN_THE_PROSE = [
    ("solutions/step3/messages.py", "MAX_NAME_LENGTH", 32, "step3.md"),
    ("solutions/step3/messages.py", "MAX_MESSAGE_LENGTH", 2000, "step3.md"),
    (
        "solutions/step7/app.py",
        "HEARTBEAT_SECONDS",
        30,
        "step5.md, step7.md, disconnects.md, testing-the-chat.md",
    ),
    ("solutions/step7/app.py", "ROOM_SIZE", 500, "step7.md, room.md"),
    (
        "solutions/room/classroom.py",
        "SEND_TIMEOUT_SECONDS",
        5,
        "room.md, disconnects.md",
    ),
    ("solutions/room/classroom.py", "MAX_BACKLOG", 5000, "room.md, disconnects.md"),
    ("solutions/room/classroom.py", "DELIVERY_THREADS", 4, "room.md"),
    ("solutions/guard/app.py", "MESSAGES_PER_SECOND", 5, "guard.md, disconnects.md"),
    ("solutions/guard/app.py", "MESSAGE_BURST", 10, "guard.md, disconnects.md"),
    (
        "solutions/guard/guard.py",
        "MAX_PER_ADDRESS",
        8,
        "guard.md, disconnects.md, instructor.md",
    ),
    ("solutions/guard/guard.py", "HEADER_SECONDS", 5, "guard.md"),
    ("solutions/login/accounts.py", "TOKEN_SECONDS", 43200, "login.md"),
    ("solutions/login/accounts.py", "HASHES_AT_ONCE", 4, "login.md"),
    ("solutions/login/accounts.py", "MIN_PASSWORD_LENGTH", 8, "login.md"),
    ("solutions/live/sse.py", "WAIT_SECONDS", 25, "live.md"),
    ("solutions/live/sse.py", "RETRY_MS", 250, "live.md"),
    ("solutions/live/sse.py", "MAX_EVENTS", 1000, "live.md"),
    ("solutions/history/app.py", "HISTORY_SIZE", 50, "history.md"),
    ("solutions/history/history.py", "RETRY_SECONDS", 2, "history.md"),
    ("solutions/history/history.py", "BUSY_TIMEOUT_SECONDS", 0.2, "history.md"),
]


def load_hook():
    """docs/hooks/step_code.py as a module (the other tests' one way to load it)."""
    spec = importlib.util.spec_from_file_location(
        "step_code_hook", ROOT / "docs" / "hooks" / "step_code.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def build_guide(project: Path, site: Path) -> None:
    """`mkdocs build --strict` of the project's guide into site (conftest's guide_site too)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(project / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    assert result.returncode == 0, (
        f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    )


def built_page(site: Path, page: str) -> Path:
    """Where mkdocs writes docs/<page>.md: <page>/index.html, and index.md at the top."""
    return site / "index.html" if page == "index" else site / page / "index.html"


def page_html(site: Path, page: str) -> str:
    return built_page(site, page).read_text(encoding="utf-8")


def code_blocks(page: str) -> list[str]:
    """The text of every <code> block of a built page, as a reader sees it."""
    blocks = re.findall(r"<code>(.*?)</code>", page, flags=re.DOTALL)
    return [
        _normalise(html.unescape(re.sub(r"<[^>]+>", "", block))) for block in blocks
    ]


def _normalise(text: str) -> str:
    # Markdown expands tabs and drops trailing blanks; compare what survives that.
    return "\n".join(
        line.expandtabs(4).rstrip() for line in text.strip("\n").splitlines()
    )


def module_setting(path: Path, name: str) -> float:
    """A module-level setting's value: `NAME = 32`, or the default of `NAME = float(os.environ.get("X", "5"))`."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            defaults = [
                c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)
            ]
            return float(defaults[-1])
    raise AssertionError(f"{path.relative_to(ROOT)} no longer defines {name}")


def learner_files(folder: Path) -> list[Path]:
    """The files a step's page must show: everything but the step's checks and caches."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and not path.name.startswith(("test_", "conftest"))
        and path.suffix != ".pyc"
        and not RUN_TIME_FILES.match(path.name)
    )


@pytest.fixture(scope="module")
def site(guide_site) -> Path:
    return guide_site


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.folder)
def test_step_page_shows_the_steps_real_files(site, step, shipped_tree):
    page = page_html(site, step.folder)
    shown = code_blocks(page)
    for folder in (shipped_tree.starter_dir(step), step.solution_dir):
        for path in learner_files(folder):
            text = _normalise(path.read_text(encoding="utf-8"))
            assert any(text == block for block in shown), (
                f"{step.guide_page} does not show {path.name} of {folder} in full"
            )


def test_every_guide_section_the_checks_point_to_exists(site, shipped_tree):
    sources = [
        *shipped_tree.root.glob("steps/*/test_*.py"),
        *ROOT.glob("workshop/**/*.py"),
        *ROOT.glob("workshop/**/*.toml"),
    ]
    references = {
        (page, anchor, source.name)
        for source in sources
        for page, anchor in GUIDE_REFERENCE.findall(source.read_text(encoding="utf-8"))
    }
    assert references, (
        "no guide references found: did the step checks stop naming their sections?"
    )
    missing = [
        f"{source} points to docs/{page}.md#{anchor}"
        for page, anchor, source in sorted(references)
        if not built_page(site, page).is_file()
        or f'id="{anchor}"' not in page_html(site, page)
    ]
    assert not missing, "guide sections that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    "source, name, stated, pages", NUMBERS_IN_THE_PROSE, ids=lambda v: str(v)
)
def test_the_numbers_the_guide_states_are_the_codes(source, name, stated, pages):
    actual = module_setting(ROOT / source, name)
    assert actual == stated, (
        f"{source} now sets {name} to {actual:g}, but the guide ({pages}) says {stated:g}: update the pages "
        "and this list together."
    )


def test_the_guide_loads_nothing_from_the_network(site):
    for page in site.rglob("*.html"):
        external = re.findall(
            r'<(?:link|script)[^>]+(?:href|src)="(https?://[^"]+)"',
            page.read_text(encoding="utf-8"),
        )
        assert not external, (
            f"{page.relative_to(site)} loads {external}: the guide must work offline"
        )


def test_changing_a_solution_changes_its_step_page(tmp_path):
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    project.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    for folder in ("docs", "steps", "solutions", "workshop"):
        shutil.copytree(ROOT / folder, project / folder, ignore=ignore)
    solution = project / "solutions" / "step4" / "app.py"
    solution.write_text(
        solution.read_text(encoding="utf-8") + f"\n{PROBE}\n", encoding="utf-8"
    )

    site = tmp_path / "site"
    build_guide(project, site)

    step4 = page_html(site, "step4")
    probe_rows = re.findall(
        r'<span class="gl([^"]*)"[^>]*>[^\n]*GUIDE_DRIFT_PROBE', step4
    )
    assert " is-typed" in probe_rows, (
        "step 4's finished code does not highlight the new line as one the learner types"
    )
    assert " add" in probe_rows, "step 4's changes do not show the new line as added"
    step5 = page_html(site, "step5")
    assert " del" in re.findall(
        r'<span class="gl([^"]*)"[^>]*>[^\n]*GUIDE_DRIFT_PROBE', step5
    ), "step 5's changes do not show the line step 5 lacks as removed"


def test_highlights_are_the_added_and_changed_lines():
    hook = load_hook()
    old = ["import json", "", "def broadcast(payload):", "    pass"]
    new = [
        "import json",
        "import threading",
        "",
        "def broadcast(payload):",
        "    with lock:",
        "        send(payload)",
    ]
    assert hook.changed_lines(old, new) == [2, 5, 6]
    assert hook.line_ranges([2, 5, 6, 7, 10]) == "2 5-7 10"
    rows = hook.diff_rows(old, new)
    assert [(kind, new_line) for kind, _, new_line in rows if kind != "same"] == [
        ("add", 2),
        ("del", None),
        ("add", 5),
        ("add", 6),
    ]
    # The whole new file is there, in order, with the removed line in its place.
    assert [new_line for _, _, new_line in rows if new_line] == [1, 2, 3, 4, 5, 6]


def test_starter_highlights_cover_only_this_steps_todo_blocks():
    hook = load_hook()
    lines = [
        "app = App()",
        "# TODO(step 3) write the handler",
        "# END TODO",
        "# TODO(step 4) broadcast",
        "#   send to every client",
        "# END TODO",
    ]
    assert hook.todo_lines(lines, 4) == [4, 5, 6]
    assert hook.todo_lines(lines, 3) == [2, 3]
