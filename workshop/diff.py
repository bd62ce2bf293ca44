"""The workshop's one diff: `make diff N` and the guide's "What changes" tab both use it.

    python -m workshop diff 4     your steps/step4 against the finished solutions/step4

Only the app's own files are compared (the checks are the same on both sides). Lines
starting with - are only in the learner's folder, lines starting with + only in the
solution, so the + lines are what is left to write. Coloured on a terminal, unless
NO_COLOR is set.

difflib.unified_diff turns autojunk on, which for files of 200 lines or more treats
frequent lines (blank ones) as junk and shows other changes than the guide's highlighted
lines: here every diff uses one matcher, with autojunk off.
"""

import difflib
import os
import sys
from collections.abc import Sequence

from workshop.starters import app_files
from workshop.steps import Step

RED, GREEN, CYAN, RESET = "\033[31m", "\033[32m", "\033[36m", "\033[0m"


def _matcher(old: list[str], new: list[str]) -> difflib.SequenceMatcher:
    return difflib.SequenceMatcher(None, old, new, autojunk=False)


def opcodes(old: list[str], new: list[str]) -> Sequence[tuple[str, int, int, int, int]]:
    """How `new` differs from `old`, as difflib's opcodes: the guide's panels use these."""
    return _matcher(old, new).get_opcodes()


def changed_lines(old: list[str], new: list[str]) -> list[int]:
    """1-based numbers of the lines of `new` that are added or changed from `old`."""
    return [
        line + 1
        for tag, _, _, new_start, new_end in _matcher(old, new).get_opcodes()
        if tag in ("replace", "insert")
        for line in range(new_start, new_end)
    ]


def unified_diff(old: list[str], new: list[str], old_name: str, new_name: str) -> str:
    """A unified diff of two lists of lines (without their line ends), 3 lines of context."""
    out = [f"--- {old_name}", f"+++ {new_name}"]
    for group in _matcher(old, new).get_grouped_opcodes(3):
        first, last = group[0], group[-1]
        out.append(
            f"@@ -{_hunk_range(first[1], last[2])} +{_hunk_range(first[3], last[4])} @@"
        )
        for tag, old_start, old_end, new_start, new_end in group:
            if tag == "equal":
                out += [" " + line for line in old[old_start:old_end]]
                continue
            out += ["-" + line for line in old[old_start:old_end]]
            out += ["+" + line for line in new[new_start:new_end]]
    return "\n".join(out)


def _hunk_range(start: int, stop: int) -> str:
    length = stop - start
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def read_lines(path) -> list[str]:
    if path is None:
        return []
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return [f"(binary file, {path.stat().st_size} bytes)"]


def step_diff(the_step: Step) -> list[str]:
    """Unified diff lines of every app file that differs; empty when the folders match."""
    yours, finished = app_files(the_step.starter_dir), app_files(the_step.solution_dir)
    lines = []
    for name in sorted(set(yours) | set(finished)):
        before, after = read_lines(yours.get(name)), read_lines(finished.get(name))
        if before == after and name in yours and name in finished:
            continue
        label_yours = (
            f"steps/{the_step.folder}/{name}" if name in yours else "/dev/null"
        )
        label_finished = (
            f"solutions/{the_step.folder}/{name}" if name in finished else "/dev/null"
        )
        lines += unified_diff(before, after, label_yours, label_finished).splitlines()
    return lines


def colour(line: str) -> str:
    if line.startswith(("+++", "---")):
        return line
    for start, code in (("+", GREEN), ("-", RED), ("@@", CYAN)):
        if line.startswith(start):
            return f"{code}{line}{RESET}"
    return line


def show(the_step: Step) -> int:
    lines = step_diff(the_step)
    yours, finished = f"steps/{the_step.folder}", f"solutions/{the_step.folder}"
    if not lines:
        print(f"{yours} matches {finished}: nothing left to write.")
        return 0
    use_colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    print(
        f"Your {yours} (lines starting with -) against the finished {finished} "
        "(lines starting with +):\n"
    )
    for line in lines:
        print(colour(line) if use_colour else line)
    key = the_step.key
    print(
        f"\nThe TODO({the_step.todo_tag}) comments count as differences too. Stuck? "
        f"`make hint {key}`; to take the whole solution (your folder is backed up "
        f"first): `make solve {key}`."
    )
    return 0
