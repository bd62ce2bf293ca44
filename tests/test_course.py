"""workshop/course.toml is the one list of the steps and chapters: the folders, the guide
(its navigation and page titles), the commands, `make progress` and the hints follow it."""

import re
import tomllib

import pytest
from mkdocs.config import load_config
from test_guide import load_hook

from workshop import progress
from workshop.steps import CHAPTERS, NUMBERED, ROOT, STEPS, finished, keys_text

KEYS = [step.key for step in STEPS]


def guide_nav() -> list:
    """The guide's navigation as the build sees it: mkdocs.yml's, completed by the hook."""
    hook = load_hook()
    config = load_config(str(ROOT / "mkdocs.yml"))
    return hook.course_nav(config["nav"])


def section(nav: list, title: str) -> list[tuple[str, str]]:
    [entries] = [
        entry[title] for entry in nav if isinstance(entry, dict) and title in entry
    ]
    return [next(iter(entry.items())) for entry in entries if isinstance(entry, dict)]


def test_each_step_has_its_folders_and_its_guide_page():
    for step in STEPS:
        for folder in (step.starter_dir, step.solution_dir):
            assert (folder / "app.py").is_file(), f"{step.label}: no {folder}/app.py"
        assert (ROOT / step.guide_page).is_file(), f"{step.label}: no {step.guide_page}"


@pytest.mark.parametrize("where", ["steps", "solutions"])
def test_no_folder_is_missing_from_the_course(where):
    folders = {path.name for path in (ROOT / where).iterdir() if path.is_dir()}
    folders.discard("__pycache__")
    assert folders == {step.folder for step in STEPS}, (
        f"{where}/ and workshop/course.toml disagree: "
        f"{folders ^ {step.folder for step in STEPS}}"
    )


def test_each_step_builds_on_an_earlier_one():
    seen: set[str] = set()
    for step in STEPS:
        assert step.builds_on is None or step.builds_on in seen, step
        seen.add(step.key)
    assert len(seen) == len(STEPS), "a key appears twice in workshop/course.toml"
    assert finished() in STEPS


def test_the_guide_lists_the_steps_and_chapters_in_course_order():
    nav = guide_nav()
    assert section(nav, "The steps") == [
        (f"{step.key}. {step.title}", f"{step.folder}.md") for step in NUMBERED
    ]
    assert section(nav, "After the steps")[: len(CHAPTERS)] == [
        (step.title, f"{step.folder}.md") for step in CHAPTERS
    ]


def test_the_home_pages_table_has_a_row_for_each_step_in_order():
    """docs/index.md's table of steps: every step and chapter, in course order."""
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    table = index.split("## The steps", 1)[1].split("\n\n", 2)[1]
    linked = re.findall(r"^\| \[[^\]]+\]\(([a-z0-9]+)\.md\)", table, re.MULTILINE)
    assert linked == [step.folder for step in STEPS], linked


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.folder)
def test_each_guide_page_carries_the_courses_title(step):
    heading = (ROOT / step.guide_page).read_text(encoding="utf-8").splitlines()[0]
    wanted = (
        f"# {step.title}" if step.is_chapter else f"# Step {step.key}: {step.title}"
    )
    assert heading == wanted, (
        f"{step.guide_page} starts {heading!r}, course.toml says {wanted!r}"
    )


def test_the_hints_follow_the_course():
    hints = tomllib.loads(
        (ROOT / "workshop" / "hints.toml").read_text(encoding="utf-8")
    )
    assert list(hints) == [step.folder for step in STEPS]


def test_progress_has_a_row_for_each_step_in_order():
    table = progress.table([progress.CheckResults(step) for step in STEPS])
    rows = [
        match.group(1)
        for line in table.splitlines()
        if (match := re.match(r"\s+(\S+)\s{2}(.+?)\s{2,}", line))
        and match.group(1) in KEYS
    ]
    assert rows == KEYS, table
    for step in STEPS:
        assert step.title in table, table


def test_the_commands_name_the_steps_of_the_course():
    assert keys_text() == f"{NUMBERED[0].key} to {NUMBERED[-1].key}, or " + ", ".join(
        step.key for step in CHAPTERS
    )
    makefile = (ROOT / "Makefile").read_text()
    assert not re.search(r"\b1 to 7\b|\b1-7\b", makefile), (
        "the Makefile lists the steps itself"
    )
