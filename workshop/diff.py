"""The learner's steps/stepN against the finished solutions/stepN, as a unified diff.  `make diff N`

Only the app's own files are compared (the checks are the same on both sides). Lines starting with - are
only in the learner's folder, lines starting with + only in the solution, so the + lines are what is left
to write. Coloured on a terminal, unless NO_COLOR is set.
"""

import difflib
import os
import sys

from workshop.starters import app_files
from workshop.steps import Step, step

RED, GREEN, CYAN, RESET = "\033[31m", "\033[32m", "\033[36m", "\033[0m"


def read_lines(path) -> list[str]:
    if path is None:
        return []
    try:
        return path.read_text(encoding="utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return [f"(binary file, {path.stat().st_size} bytes)\n"]


def step_diff(the_step: Step) -> list[str]:
    """Unified diff lines of every app file that differs; empty when the folders match."""
    yours, finished = app_files(the_step.starter_dir), app_files(the_step.solution_dir)
    lines = []
    for name in sorted(set(yours) | set(finished)):
        before, after = read_lines(yours.get(name)), read_lines(finished.get(name))
        label_yours = (
            f"steps/{the_step.folder}/{name}" if name in yours else "/dev/null"
        )
        label_finished = (
            f"solutions/{the_step.folder}/{name}" if name in finished else "/dev/null"
        )
        for line in difflib.unified_diff(before, after, label_yours, label_finished):
            lines.append(
                line
                if line.endswith("\n")
                else line + "\n\\ No newline at end of file\n"
            )
    return lines


def colour(line: str) -> str:
    if line.startswith(("+++", "---")):
        return line
    for start, code in (("+", GREEN), ("-", RED), ("@@", CYAN)):
        if line.startswith(start):
            return f"{code}{line.rstrip(chr(10))}{RESET}\n"
    return line


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    try:
        the_step = step(arguments[0])
    except IndexError:
        print(
            "usage: python -m workshop diff STEP   (a step, 1 to 7, or a chapter)",
            file=sys.stderr,
        )
        return 2
    except ValueError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    lines = step_diff(the_step)
    yours, finished = f"steps/{the_step.folder}", f"solutions/{the_step.folder}"
    if not lines:
        print(f"{yours} matches {finished}: nothing left to write.")
        return 0
    use_colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    print(
        f"Your {yours} (lines starting with -) against the finished {finished} (lines starting with +):\n"
    )
    sys.stdout.writelines(colour(line) if use_colour else line for line in lines)
    key = the_step.key
    print(
        f"\nThe TODO({the_step.todo_tag}) comments count as differences too. Stuck? `make hint {key}`; "
        f"to take the whole solution (your folder is backed up first): `make solve {key}`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
