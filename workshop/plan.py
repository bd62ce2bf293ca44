"""The timed plan of a live session: `make plan 90`, `make plan 180`.

    python -m workshop plan 90      # a table: when each step starts, how the room does it, for how long

The minutes of a step the room types are course.toml's; how each session does each step (type,
paste, watch), its opening, closing and breaks are in plan.toml. The instructor page shows the same
tables (docs/hooks/timed_plan.py).
"""

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from workshop.steps import STEPS, Step

PLAN_FILE = Path(__file__).with_name("plan.toml")
MODES = ("type", "paste", "watch", "after")


@dataclass(frozen=True)
class Slot:
    start: int  # minutes from the session's start
    minutes: int
    what: str  # "Step 3: The WebSocket handler", "Break", ...
    mode: str  # "type", "paste", "watch", or "" for the rest
    you: str  # what the instructor does meanwhile


def _plans() -> dict:
    return tomllib.loads(PLAN_FILE.read_text(encoding="utf-8"))


def sessions() -> list[int]:
    return [session["minutes"] for session in _plans()["session"]]


def what_you_do(course_step: Step, mode: str) -> str:
    key = course_step.key
    if mode == "type":
        return (
            f"The room writes steps/{course_step.folder} with `make check {key}`; "
            f"then `make demo {key}` and try it together."
        )
    if mode == "paste":
        return (
            f"Everyone runs `make solve {key}`; you walk through the code on the "
            f"{course_step.folder}.md page."
        )
    if mode == "after":
        return (
            f"Not in the session: learners who want it take it on their own "
            f"afterwards (`make step {key}`, the {course_step.folder}.md page)."
        )
    return f"You run `make demo {key}`; the room joins it and watches."


def slots(minutes: int) -> list[Slot]:
    """The session of this many minutes, slot by slot (ValueError if plan.toml has none)."""
    plans = _plans()
    session = next((s for s in plans["session"] if s["minutes"] == minutes), None)
    if session is None:
        raise ValueError(
            f"plan.toml has no {minutes}-minute session: it has "
            f"{', '.join(map(str, sessions()))}"
        )
    missing = [s.key for s in STEPS if s.key not in session["steps"]]
    unknown = set(session["steps"]) - {s.key for s in STEPS}
    wrong = {mode for mode in session["steps"].values()} - set(MODES)
    if missing or unknown or wrong:
        raise ValueError(
            f"plan.toml's {minutes}-minute session: no way in for {missing}, unknown "
            f"steps {sorted(unknown)}, unknown modes {sorted(wrong)} (modes: {MODES})"
        )
    plan, clock = [], 0

    def add(length: int, what: str, mode: str, you: str) -> None:
        nonlocal clock
        plan.append(Slot(clock, length, what, mode, you))
        clock += length

    add(
        session["opening"],
        "Welcome",
        "",
        "`make dashboard` and `make demo` already run: the room joins the finished "
        "chat from the QR code and runs `make share`.",
    )
    for course_step in STEPS:
        mode = session["steps"][course_step.key]
        length = {
            "type": course_step.minutes,
            "paste": plans["paste_minutes"],
            "watch": plans["watch_minutes"],
            "after": 0,
        }[mode]
        name = "Chapter" if course_step.is_chapter else "Step"
        add(
            length,
            f"{name} {course_step.key}: {course_step.title}",
            mode,
            what_you_do(course_step, mode),
        )
        if course_step.key in session["breaks"]:
            add(session["breaks"][course_step.key], "Break", "", "")
    add(session["closing"], "Questions, what next", "", "")
    slack = minutes - clock
    if slack < 0:
        raise ValueError(
            f"plan.toml's {minutes}-minute session takes {clock} minutes: "
            f"{-slack} too many"
        )
    add(
        slack,
        "Slack",
        "",
        "For the room to catch up: the dashboard says when half of it is behind.",
    )
    return plan


def clock_text(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def markdown_table(minutes: int) -> str:
    rows = [
        "| Starts | Minutes | What | The room | You |",
        "| ---: | ---: | --- | --- | --- |",
    ]
    for slot in slots(minutes):
        # In the guide, "the step2.md page" is a link to it.
        you = re.sub(r"the (\w+)\.md page", r"[the \1 page](\1.md)", slot.you)
        rows.append(
            f"| {clock_text(slot.start)} | {slot.minutes} | {slot.what} | "
            f"{slot.mode} | {you} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("minutes", type=int, nargs="?", default=90)
    args = parser.parse_args(argv)
    try:
        plan = slots(args.minutes)
    except ValueError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    width = max(len(slot.what) for slot in plan)
    print(
        f"A {args.minutes}-minute session (type: the room writes it; paste: make solve)"
    )
    for slot in plan:
        print(
            f"  {clock_text(slot.start):>5}  {slot.minutes:>3} min  "
            f"{slot.what:{width}}  {slot.mode:5}  {slot.you}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
