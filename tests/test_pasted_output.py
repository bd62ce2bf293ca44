"""Every check output pasted in the guide is what the checks print today.

Two kinds of pasted output:

- A "Check yourself" block, ```console starting with `$ pytest steps/<folder>`: a passing run of
  the step's checks. Its check files, their dots, the count it collected and passed are compared
  with the checks as shipped (their collection: a pass prints one dot per check).
- A block right after a `<!-- check-output: steps/<folder> on ... -->` comment: the checks really
  run, on "the starter", "the solution" or "mistake <id>" (tests/mistakes.toml), with the
  environment the comment adds (`, CHROMIUM=/nonexistent`). Every line of the block (but "...",
  pytest's header, timings and the numbers in default names) must appear, in order, in what they
  print.
"""

import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

from workshop import launcher, mistakes
from workshop.steps import ROOT, step

PAGES = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"```(?:console|text)\n(.*?)```", re.DOTALL)
MARKER = re.compile(
    r"<!-- check-output: steps/(?P<folder>[\w-]+) on (?P<app>the starter|the solution|"
    r"mistake [\w-]+)(?:, (?P<env>[^>]*?))? -->\s*```(?:console|text)\n(?P<block>.*?)```",
    re.DOTALL,
)
HEADER = re.compile(
    r"^(platform |rootdir: |configfile: |plugins: |cachedir: |=+ test ses)"
)
WIDTH = 80  # pytest's lines when its output is not a terminal


def normalised(line: str) -> str:
    line = re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip()
    line = re.sub(r"User-\d+", "User-N", line)
    line = re.sub(r"127\.0\.0\.1:(?!8001)\d+", "127.0.0.1:PORT", line)
    line = re.sub(r" in \d+(\.\d+)?s\b", " in Ts", line)
    return re.sub(r"={3,}", "==", line).strip()


def pasted_blocks() -> list[tuple[str, str, str]]:
    """(page, folder, block) of every "Check yourself" console block without a marker."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        marked = {m.group("block") for m in MARKER.finditer(text)}
        for block in BLOCK.findall(text):
            first = block.splitlines()[0] if block.strip() else ""
            command = re.fullmatch(r"\$ pytest steps/([\w-]+)", first)
            if command and block not in marked and len(block.splitlines()) > 1:
                found.append((page.name, command[1], block))
    return found


def marked_blocks() -> list[tuple[str, re.Match]]:
    return [
        (page.name, match)
        for page in PAGES
        for match in MARKER.finditer(page.read_text(encoding="utf-8"))
    ]


def progress_lines(tree: Path, folder: str) -> tuple[int, list[str]]:
    """How many checks a passing run collects, and the lines it prints for their files."""
    _, listed = launcher.run_captured(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        + [f"steps/{folder}"],
        tree,
        dict(os.environ),
        timeout=120,
    )
    files: dict[str, int] = {}
    for line in listed.splitlines():
        if "::" in line:
            name = line.split("::")[0]
            files[name] = files.get(name, 0) + 1
    total, done, lines = sum(files.values()), 0, []
    for name, count in files.items():
        done += count
        text = f"{name} {'.' * count}"
        lines.append(
            text + f" [{done * 100 // total:3d}%]".rjust(WIDTH - len(text) - 1)
        )
    return total, lines


@pytest.mark.parametrize(
    "page, folder, block",
    pasted_blocks(),
    ids=lambda value: value if isinstance(value, str) and "\n" not in value else "",
)
def test_a_pasted_passing_run_matches_the_checks(page, folder, block, shipped_tree):
    total, lines = progress_lines(shipped_tree.root, folder)
    shown = [line.rstrip() for line in block.splitlines()]
    expected = [f"collected {total} items", *lines]
    missing = [line for line in expected if line not in shown]
    passed = [line for line in shown if re.search(r"\b\d+ passed\b", line)]
    assert not missing and passed and f" {total} passed" in passed[0], (
        f"docs/{page}: the pasted `pytest steps/{folder}` is out of date. Today it "
        f"collects {total} checks and prints:\n"
        + "\n".join(expected)
        + f"\n... {total} passed"
    )


@pytest.mark.parametrize(
    "page, match",
    marked_blocks(),
    ids=lambda value: value if isinstance(value, str) else value.group("app"),
)
def test_a_pasted_check_output_is_what_the_checks_print(page, match, shipped_tree):
    folder, app = match.group("folder"), match.group("app")
    the_step = step(folder)
    env = dict(
        pair.split("=", 1) for pair in (match.group("env") or "").split() if "=" in pair
    )
    block = match.group("block")
    with tempfile.TemporaryDirectory() as workdir:
        if app == "the starter":
            app_dir = shipped_tree.starter_dir(the_step)
        elif app == "the solution":
            app_dir = the_step.solution_dir
        else:
            (mistake,) = [m for m in mistakes.load() if m.id == app.split()[1]]
            app_dir = mistake.write(Path(workdir))
        checks = re.findall(r"^Check: (.*)$", block, re.MULTILINE)
        selected = _checks_with_docstrings(shipped_tree.starter_dir(the_step), checks)
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        command += [f"--app={app_dir}", f"steps/{folder}"]
        if selected:
            command += ["-k", " or ".join(selected)]
        _, ran = launcher.run_captured(
            command, shipped_tree.root, {**os.environ, **env}, timeout=180
        )
    printed = [normalised(line) for line in ran.splitlines()]
    wanted = [
        normalised(line)
        for line in block.splitlines()[(1 if block.startswith("$ ") else 0) :]
        if line.strip() and line.strip() != "..." and not HEADER.match(line)
    ]
    position = 0
    for line in wanted:
        try:
            position = printed.index(line, position) + 1
        except ValueError:
            raise AssertionError(
                f"docs/{page}: the output pasted after `check-output: steps/{folder} on "
                f"{app}` has a line the checks no longer print:\n    {line}\n"
                f"They print:\n{ran[-5000:]}"
            ) from None


def _checks_with_docstrings(folder: Path, checks: list[str]) -> list[str]:
    """The names of the check functions whose docstrings open with these sentences."""
    names = []
    source = "".join(path.read_text() for path in sorted(folder.glob("test_*.py")))
    for function, docstring in re.findall(
        r'def (test_\w+)\([^)]*\):\n\s+"""(.*?)"""', source, re.DOTALL
    ):
        first = " ".join(docstring.strip().split("\n\n")[0].split())
        if first in checks:
            names.append(function)
    return names
