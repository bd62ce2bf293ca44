"""Each starter is the previous step's finished code plus TODO blocks: this module checks that it stays so.

A TODO block runs from a line containing "TODO(step N)" (or "TODO(room)" in a chapter) to the next line
containing "END TODO", in any file type (Python comments, HTML or JavaScript comments). Removing the
blocks from a starter must give the finished code it builds on (blank lines aside), so a learner who
starts at any step starts from correct code. A file that is new in a step is all TODO (the learner writes
it), handed out ready-made (equal to the finished one), or handed out to complete: then what is left
once its TODO blocks are removed appears, in order, in the finished file.

    python -m workshop.starters          # check every step and chapter; exit status 1 if any drifted
"""

import difflib
import importlib.util
import io
import re
import sys
import tokenize
from pathlib import Path

from workshop.steps import STEPS, Step

# TODO(step 3) in a numbered step, TODO(room) in a chapter.
TODO_START = re.compile(r"TODO\((step \d+|[a-z][a-z-]*)\)")
CHECK_FILES = ("test_", "conftest")
# What an app writes as it runs, not code: chapter history's SQLite file and its -wal, -shm.
RUN_TIME_FILES = re.compile(r".*\.db([-.].*)?$")


def todo_blocks(lines: list[str]) -> list[tuple[str, int, int]]:
    """(tag, first, last) of each TODO block, 0-based and inclusive: ("step 3", 10, 14)."""
    blocks, start = [], None
    for number, line in enumerate(lines):
        if start is None and (found := TODO_START.search(line)):
            tag, start = found.group(1), number
        if start is not None and "END TODO" in line:
            blocks.append((tag, start, number))
            start = None
    if start is not None:
        raise ValueError(
            f"the TODO block that starts on line {start + 1} has no END TODO line"
        )
    return blocks


def strip_todo_blocks(text: str) -> str:
    lines = text.splitlines(keepends=True)
    inside = {
        n for _, first, last in todo_blocks(lines) for n in range(first, last + 1)
    }
    return "".join(line for number, line in enumerate(lines) if number not in inside)


def layout_insensitive(text: str) -> str:
    """Text without its blank lines: where a TODO block sat may leave one, or take one."""
    return "\n".join(line for line in text.splitlines() if line.strip()) + "\n"


CACHES = ("__pycache__", ".pytest_cache")


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file in a step folder that a learner could have written (caches aside), by
    its path relative to the folder: "app.py", "test_step4.py"."""
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and not _in_a_cache(path.relative_to(folder).parts)
        and not RUN_TIME_FILES.match(path.name)
    }


def _in_a_cache(parts: tuple[str, ...]) -> bool:
    return any(part in CACHES for part in parts)


def is_check(name: str) -> bool:
    """A step's checks (test_*.py, conftest.py): the same in steps/ and solutions/."""
    return Path(name).name.startswith(CHECK_FILES)


def app_files(folder: Path) -> dict[str, Path]:
    """The app's own files in a step folder (not its checks, not caches)."""
    return {
        name: path for name, path in folder_files(folder).items() if not is_check(name)
    }


def is_in_order_within(kept: str, finished: str) -> bool:
    """Whether every non-blank line of `kept` appears in `finished`, in the same order."""
    wanted = [line for line in kept.splitlines() if line.strip()]
    remaining = iter(finished.splitlines())
    return all(any(line == candidate for candidate in remaining) for line in wanted)


def drift(step: Step, starter_dir: Path | None = None) -> list[str]:
    """What keeps a starter from being the finished code it builds on plus TODO blocks; empty if none.
    starter_dir: where the starter is, if not in this working copy (the shipped one, say)."""
    problems = []
    here = f"steps/{step.folder}"
    starter = app_files(starter_dir or step.starter_dir)
    previous = app_files(step.previous.solution_dir) if step.previous else {}
    before = f"solutions/{step.previous.folder}" if step.previous else "(nothing)"
    finished = app_files(step.solution_dir)
    for name in sorted(set(starter) | set(previous)):
        where = f"{here}/{name}"
        if name not in starter:
            problems.append(f"{where} is missing: {before}/{name} should be there too")
            continue
        text = starter[name].read_text()
        try:
            stripped = strip_todo_blocks(text)
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        if name in previous:
            expected, actual, source = (
                previous[name].read_text(),
                stripped,
                f"{before}/{name}",
            )
        elif not stripped.strip():
            continue  # a new file that is all TODO: the learner writes it
        elif name not in finished:
            problems.append(
                f"{where} is new here but is neither all TODO nor in solutions/{step.folder}"
            )
            continue
        elif stripped != text:
            if not is_in_order_within(stripped, finished[name].read_text()):
                problems.append(
                    f"{where} is handed out to complete, but what it keeps outside its TODO blocks "
                    f"is not, in order, in solutions/{step.folder}/{name}"
                )
            continue
        else:
            expected, actual = finished[name].read_text(), text
            source = f"solutions/{step.folder}/{name} (ready-made)"
        if layout_insensitive(actual) != layout_insensitive(expected):
            diff = difflib.unified_diff(
                expected.splitlines(),
                actual.splitlines(),
                source,
                f"{where} without its TODO blocks",
                lineterm="",
                n=1,
            )
            problems.append("\n".join(diff))
    tags = {
        tag
        for path in starter.values()
        for tag, _, _ in todo_blocks(path.read_text().splitlines())
    }
    if step.todo_tag not in tags:
        problems.append(
            f"{here} has no TODO({step.todo_tag}) block: what is the learner to do?"
        )
    if stray := tags - {step.todo_tag}:
        problems.append(
            f"{here} has TODO blocks of other steps: {', '.join(sorted(stray))}"
        )
    return problems


# --- a starter that behaves as the finished code it builds on (tests/test_steps.py) ---

COMMENT_STARTS = ("#", "//", "<!--", "/*")


def _code_tokens(text: str) -> list[tuple[int, str]]:
    """A Python file's tokens without its comments and blank lines: what runs."""
    skipped = (tokenize.COMMENT, tokenize.NL)
    readline = io.StringIO(text).readline
    return [
        (t.type, t.string)
        for t in tokenize.generate_tokens(readline)
        if t.type not in skipped
    ]


def is_code(line: str) -> bool:
    """Neither blank nor a comment line (Python, JavaScript, HTML or CSS)."""
    return bool(line.strip()) and not line.strip().startswith(COMMENT_STARTS)


def behaviour_changes(step: Step, starter_dir: Path | None = None) -> list[str]:
    """Why the starter may not behave exactly as the finished code it builds on; empty when
    it cannot differ: its files are that code but for comments (Python: the same tokens;
    other files: the same text once their all-comment TODO blocks are gone), and each file
    it adds is one that nothing loads (a module no code names, shadowing no installed
    one; a page no code names)."""
    if step.previous is None:
        return ["the first step builds on nothing"]
    starter = app_files(starter_dir or step.starter_dir)
    previous = app_files(step.previous.solution_dir)
    changes = [f"{name} is missing" for name in sorted(set(previous) - set(starter))]
    code = "\n".join(path.read_text() for path in previous.values())
    for name, path in starter.items():
        text = path.read_text()
        if name not in previous:
            module = Path(name).stem if name.endswith(".py") else None
            if module and (
                module in sys.stdlib_module_names or importlib.util.find_spec(module)
            ):
                changes.append(f"{name} shadows the installed module {module}")
            elif re.search(rf"\b{re.escape(module or name)}\b", code):
                changes.append(f"{name} is new, and the code names it")
        elif name.endswith(".py"):
            if _code_tokens(text) != _code_tokens(previous[name].read_text()):
                changes.append(f"{name}: its code is not the same")
        else:
            lines = text.splitlines()
            blocks = [lines[first : last + 1] for _, first, last in todo_blocks(lines)]
            if any(is_code(line) for block in blocks for line in block):
                changes.append(f"{name}: a TODO block holds more than comments")
            elif strip_todo_blocks(text) != previous[name].read_text():
                changes.append(f"{name}: its text is not the same")
    return changes


def main() -> int:
    failures = 0
    for step in STEPS:
        problems = drift(step)
        failures += bool(problems)
        print(f"{step.label}: " + ("ok" if not problems else "DRIFTED"))
        for problem in problems:
            print("    " + problem.replace("\n", "\n    "))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())


def typed_lines(step: Step, starter_dir: Path | None = None) -> dict[str, int]:
    """Per file, the lines a learner types: non-blank, non-comment lines the finished code
    adds or changes from the starter. Files handed out ready-made count none."""
    starter = app_files(starter_dir or step.starter_dir)
    finished = app_files(step.solution_dir)
    counts = {}
    for name, path in finished.items():
        old = starter[name].read_text().splitlines() if name in starter else []
        new = path.read_text().splitlines()
        if old == new:
            continue
        matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
        added = [
            line
            for tag, _, _, first, last in matcher.get_opcodes()
            if tag in ("replace", "insert")
            for line in new[first:last]
        ]
        counts[name] = sum(1 for line in added if is_code(line))
    return counts
