"""Hints for a step, one more each time they are asked for.  `make hint N`

The texts live in workshop/hints.toml. How many of each step's hints the learner has seen is kept in
.workshop-state/hints.json (git ignores it), so the next `make hint N` goes one further.

    python -m workshop hint 4            # one more hint for step 4
    python -m workshop hint 4 --again    # start step 4's hints from the first one again
    python -m workshop hint 4 --all      # every hint of step 4 seen so far
"""

import json
import re
import tomllib
from pathlib import Path

from workshop.steps import ROOT, Step, guide_link

HINTS_FILE = Path(__file__).with_name("hints.toml")
STATE_FILE = ROOT / ".workshop-state" / "hints.json"


def all_hints() -> dict[str, list[str]]:
    """Step folder ("step4", "room") -> its hints, in order."""
    data = tomllib.loads(HINTS_FILE.read_text(encoding="utf-8"))
    return {
        folder: [hint.strip() for hint in table["hints"]]
        for folder, table in data.items()
    }


def hints_seen() -> dict[str, int]:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}  # never asked yet, or a damaged file: start over rather than fail


def remember(key: str, count: int) -> None:
    seen = hints_seen()
    seen[key] = count
    STATE_FILE.parent.mkdir(exist_ok=True)
    STATE_FILE.write_text(json.dumps(seen, indent=2, sort_keys=True) + "\n")


def formatted(hint: str) -> str:
    """The hint indented, its "Read: docs/stepN.md#section" lines also giving the served guide's address."""
    hint = re.sub(
        r"^Read: docs/(\S+)$",
        lambda found: f"Read: {guide_link(found.group(1))}",
        hint,
        flags=re.MULTILINE,
    )
    return "\n".join("    " + line if line else "" for line in hint.splitlines())


def show(the_step: Step, again: bool = False, every: bool = False) -> int:
    """The next hint for the step (the first again with `again`; all seen with `every`)."""
    key, hints = the_step.key, all_hints()[the_step.folder]
    before = 0 if again else min(hints_seen().get(key, 0), len(hints))
    shown = min(before + 1, len(hints))
    remember(key, shown)

    first = 1 if every else shown  # the new hint only: the earlier ones were read
    for index, hint in enumerate(hints[first - 1 : shown], start=first):
        new = " (new)" if index > before else ""
        print(
            f"{the_step.label.capitalize()}, hint {index} of {len(hints)}{new}:\n\n{formatted(hint)}\n"
        )
    if first > 1:
        seen = "hint 1" if first == 2 else f"hints 1-{first - 1}"
        print(f"({seen} again, with this one: `make hint {key} ALL=1`)")
    if shown < len(hints):
        print(f"Still stuck? `make hint {key}` again gives the next one.")
    else:
        if before == len(hints):
            print(
                f"That is every hint for {the_step.label}. `make hint {key} AGAIN=1` starts over."
            )
        print(
            f"`make diff {key}` shows what is left between your code and the finished step; "
            f"`make solve {key}` puts the finished step in place (your folder is backed up first)."
        )
    return 0
