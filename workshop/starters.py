"""Each starter is the previous step's finished code plus TODO blocks: this module checks that it stays so.

A TODO block runs from a line containing "TODO(step N)" to the next line containing "END TODO", in any
file type (Python comments, HTML or JavaScript comments). Removing the blocks from steps/stepN must give
solutions/step(N-1) (blank lines aside), so a learner who starts at any step starts from correct code. A file that is
new in step N is either all TODO (the learner writes it) or handed out ready-made, equal to solutions/stepN's.

    python -m workshop.starters          # check all seven; prints what drifted, exit status 1 if any
"""

import difflib
import re
import sys
from pathlib import Path

from workshop.steps import STEPS, Step

TODO_START = re.compile(r"TODO\(step (\d+)\)")
LEARNER_FILES_IGNORED = ("test_", "conftest")


def strip_todo_blocks(text: str) -> str:
    kept, inside = [], False
    for line in text.splitlines(keepends=True):
        if not inside and TODO_START.search(line):
            inside = True
        if not inside:
            kept.append(line)
        elif "END TODO" in line:
            inside = False
    if inside:
        raise ValueError("a TODO block has no END TODO line")
    return "".join(kept)


def layout_insensitive(text: str) -> str:
    """Text with runs of blank lines folded into one: where a TODO block sat may leave an extra blank line."""
    return re.sub(r"\n\s*\n(\s*\n)+", "\n\n", text).strip() + "\n"


def app_files(folder: Path) -> dict[str, Path]:
    """The app's own files in a step folder (not its checks, not caches)."""
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(LEARNER_FILES_IGNORED)
    }


def drift(step: Step) -> list[str]:
    """What keeps steps/stepN from being solutions/step(N-1) plus TODO blocks; empty when all is well."""
    problems = []
    starter = app_files(step.starter_dir)
    previous = app_files(STEPS[step.number - 2].solution_dir) if step.number > 1 else {}
    finished = app_files(step.solution_dir)
    for name in sorted(set(starter) | set(previous)):
        where = f"steps/step{step.number}/{name}"
        if name not in starter:
            problems.append(f"{where} is missing: solutions/step{step.number - 1}/{name} should be there too")
            continue
        text = starter[name].read_text()
        try:
            stripped = strip_todo_blocks(text)
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        if name in previous:
            expected, actual, source = previous[name].read_text(), stripped, f"solutions/step{step.number - 1}/{name}"
        elif not stripped.strip():
            continue  # a new file that is all TODO: the learner writes it
        elif name in finished:
            expected, actual, source = finished[name].read_text(), text, f"solutions/step{step.number}/{name} (ready-made)"
        else:
            problems.append(f"{where} is new in this step but is neither all TODO nor a copy of solutions/step{step.number}")
            continue
        if layout_insensitive(actual) != layout_insensitive(expected):
            diff = difflib.unified_diff(
                expected.splitlines(), actual.splitlines(), source, f"{where} without its TODO blocks", lineterm="", n=1
            )
            problems.append("\n".join(diff))
    if not any(TODO_START.search(path.read_text()) for path in starter.values()):
        problems.append(f"steps/step{step.number} has no TODO(step {step.number}) block: what is the learner to do?")
    return problems


def main() -> int:
    failures = 0
    for step in STEPS:
        problems = drift(step)
        failures += bool(problems)
        print(f"step {step.number}: " + ("ok" if not problems else "DRIFTED"))
        for problem in problems:
            print("    " + problem.replace("\n", "\n    "))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
