"""The class's progress: what learners' check runs report, and what the dashboard makes of it.

A report (sent by workshop/share.py after `make check`, `make progress` or `make watch`) holds a
learner's chosen name, a random seat number (so two Sams stay two rows), and for each step run,
which of its checks passed, failed or were skipped. Never code, never a failure's message.

The board keeps it in memory only: stopping the dashboard forgets it (export the CSV first).
"""

import ast
import csv
import io
import re
import time
from dataclasses import dataclass, field
from datetime import datetime

from workshop.steps import GUIDE_URL, STEPS, Step, step

# A learner not heard from for this long has left (or stopped running checks): greyed out, and
# left out of "stuck" and of the room's counts.
AWAY_SECONDS = 15 * 60
MAX_LEARNERS = 1000
MAX_NAME_LENGTH = 32
SEAT = re.compile(r"[0-9a-f]{8,64}")
CHECK_NAME = re.compile(r"test_\w{1,150}")
OUTCOMES = ("passed", "failed", "skipped")
SHOWN_STUCK = 5
SHOWN_FAILING = 3


def spreadsheet_safe(text: str) -> str:
    """A name a spreadsheet would run as a formula ("=HYPERLINK(...)") is kept as text."""
    return "'" + text if text.startswith(("=", "+", "-", "@")) else text


class BadReport(ValueError):
    """A report the dashboard refuses; its text is the answer the learner's tool prints."""


@dataclass(frozen=True)
class Check:
    step: str
    name: str
    doc: str  # the docstring's first paragraph: what the check wants, in words
    guide: str  # "step4.md#broadcast", or ""

    @property
    def guide_url(self) -> str:
        if not self.guide:
            return ""
        page, _, anchor = self.guide.partition("#")
        return f"{GUIDE_URL}/{page.removesuffix('.md')}/" + (
            f"#{anchor}" if anchor else ""
        )


def checks_of(course_step: Step) -> list[Check]:
    """The checks in steps/<folder>/test_*.py, read (not imported) from this clone."""
    found = []
    for path in sorted(course_step.starter_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith(
                "test_"
            ):
                continue
            doc = " ".join(
                (ast.get_docstring(node) or node.name).split("\n\n")[0].split()
            )
            guide = next(
                (
                    decorator.args[0].value
                    for decorator in node.decorator_list
                    if isinstance(decorator, ast.Call)
                    and ast.unparse(decorator.func).endswith("mark.guide")
                    and decorator.args
                    and isinstance(decorator.args[0], ast.Constant)
                ),
                "",
            )
            found.append(Check(course_step.key, node.name, doc, str(guide)))
    return found


def catalogue() -> dict[str, list[Check]]:
    return {course_step.key: checks_of(course_step) for course_step in STEPS}


def clean_report(report) -> tuple[str, str, list[tuple[str, dict[str, str], bool]]]:
    """(seat, name, [(step key, {check: outcome}, complete)]) or BadReport saying why."""
    if not isinstance(report, dict):
        raise BadReport("A report is a JSON object.")
    seat, name, steps = report.get("seat"), report.get("name"), report.get("steps")
    if not isinstance(seat, str) or not SEAT.fullmatch(seat):
        raise BadReport(
            "The seat number is missing or malformed: run `make share` again."
        )
    if not isinstance(name, str) or not name.strip():
        raise BadReport("A name is needed: make share NAME=...")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise BadReport(f"A name is at most {MAX_NAME_LENGTH} printable characters.")
    if not isinstance(steps, list) or not steps or len(steps) > 2 * len(STEPS):
        raise BadReport("A report lists the steps whose checks ran.")
    cleaned = []
    for entry in steps:
        if not isinstance(entry, dict):
            raise BadReport("Each step of a report is a JSON object.")
        try:
            key = step(str(entry.get("step"))).key
        except ValueError:
            raise BadReport(
                f"Unknown step {entry.get('step')!r}: is your workshop up to date "
                "with the instructor's (git pull)?"
            )
        checks = entry.get("checks")
        if (
            not isinstance(checks, dict)
            or len(checks) > 300
            or not all(
                isinstance(check, str)
                and CHECK_NAME.fullmatch(check)
                and outcome in OUTCOMES
                for check, outcome in checks.items()
            )
        ):
            raise BadReport(
                '"checks" maps check names (test_...) to passed/failed/skipped.'
            )
        cleaned.append((key, dict(checks), bool(entry.get("complete"))))
    return seat, name, cleaned


@dataclass
class Learner:
    seat: str
    name: str
    first_seen: float
    last_seen: float
    outcomes: dict[str, dict[str, str]] = field(
        default_factory=dict
    )  # step -> check -> outcome
    current: str | None = None  # the step they are on; None once everything passes
    since: float | None = None  # when they started on it
    reports: int = 0
    cells: dict[str, dict] = field(
        default_factory=dict
    )  # step -> its cell, as of the last report


class Board:
    """Every learner's latest outcomes. Not thread-safe: the server holds a lock around it."""

    def __init__(self, away_seconds: float = AWAY_SECONDS, checks=None):
        self.away_seconds = away_seconds
        self.checks: dict[str, list[Check]] = (
            checks if checks is not None else catalogue()
        )
        self.learners: dict[str, Learner] = {}
        self.order = [course_step.key for course_step in STEPS]

    # --- reports ----------------------------------------------------------------------
    def report(self, report, now: float | None = None) -> Learner:
        now = time.time() if now is None else now
        seat, name, steps = clean_report(report)
        learner = self.learners.get(seat)
        if learner is None:
            if len(self.learners) >= MAX_LEARNERS:
                raise BadReport(f"The dashboard is full ({MAX_LEARNERS} learners).")
            learner = self.learners[seat] = Learner(seat, name, now, now)
        learner.name, learner.last_seen = name, now
        learner.reports += 1
        for key, checks, complete in steps:
            if complete:
                learner.outcomes[key] = checks
            else:
                learner.outcomes.setdefault(key, {}).update(checks)
        current = self._current(learner, [key for key, _, _ in steps])
        if current != learner.current or learner.since is None:
            learner.current, learner.since = current, now
        # Worked out once per report, not once per view update (300 learners x 8 steps).
        learner.cells = {key: self.cell(learner, key) for key in self.order}
        return learner

    def _current(self, learner: Learner, reported: list[str]) -> str | None:
        """The first step of this report not done yet; else the step after the last one."""
        ordered = sorted(reported, key=self.order.index)
        for key in ordered:
            if not self.done(learner, key):
                return key
        following = self.order.index(ordered[-1]) + 1
        return self.order[following] if following < len(self.order) else None

    def done(self, learner: Learner, key: str) -> bool:
        outcomes = learner.outcomes.get(key, {})
        known = [check.name for check in self.checks.get(key, [])]
        return (
            "passed" in outcomes.values()
            and "failed" not in outcomes.values()
            and all(name in outcomes for name in known)
        )

    def cell(self, learner: Learner, key: str) -> dict:
        outcomes = learner.outcomes.get(key)
        if not outcomes:
            return {
                "state": "none",
                "passed": 0,
                "total": len(self.checks.get(key, [])),
            }
        total = len(self.checks.get(key, [])) or len(outcomes)
        passed = sum(1 for outcome in outcomes.values() if outcome == "passed")
        state = "done" if self.done(learner, key) else "working"
        # make progress runs the untouched starters ahead too: all failing is not started.
        ahead = learner.current is not None and self.order.index(
            key
        ) > self.order.index(learner.current)
        if state == "working" and passed == 0 and ahead:
            state = "none"
        return {"state": state, "passed": passed, "total": total}

    # --- what the dashboard shows -----------------------------------------------------
    def away(self, learner: Learner, now: float) -> bool:
        return now - learner.last_seen >= self.away_seconds

    def snapshot(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        learners = sorted(
            self.learners.values(), key=lambda ln: (ln.name.casefold(), ln.seat)
        )
        active = [learner for learner in learners if not self.away(learner, now)]
        rows = []
        for learner in learners:
            stuck_for = self._stuck_for(learner, now)
            rows.append(
                {
                    "seat": learner.seat,
                    "name": learner.name,
                    "away": self.away(learner, now),
                    "current": learner.current,
                    "on_step_for": stuck_for,  # at `now`; the page counts from `since`
                    "since": learner.since if stuck_for is not None else None,
                    "cells": learner.cells,
                }
            )
        return {
            "now": now,
            "steps": [
                {"key": s.key, "title": s.title, "chapter": s.is_chapter} for s in STEPS
            ],
            "learners": rows,
            "active": len(active),
            "away": len(learners) - len(active),
            "stuck": self._stuck(active, now),
            "failing": self._failing(active),
        }

    def _stuck_for(self, learner: Learner, now: float) -> float | None:
        if learner.current is None or learner.since is None or self.away(learner, now):
            return None
        return now - learner.since

    def _first_failing(self, learner: Learner, key: str) -> Check | None:
        outcomes = learner.outcomes.get(key, {})
        for check in self.checks.get(key, []):
            if outcomes.get(check.name) == "failed":
                return check
        return None

    def _stuck(self, active: list[Learner], now: float) -> list[dict]:
        working = [
            learner
            for learner in active
            if learner.current is not None and learner.outcomes.get(learner.current)
        ]
        working.sort(key=lambda learner: learner.since or 0.0)
        shown = []
        for learner in working[:SHOWN_STUCK]:
            failing = self._first_failing(learner, learner.current or "")
            shown.append(
                {
                    "name": learner.name,
                    "step": learner.current,
                    "seconds": now - (learner.since or now),
                    "since": learner.since,
                    "failing": failing.doc if failing else "",
                    "guide_url": failing.guide_url if failing else "",
                }
            )
        return shown

    def _failing(self, active: list[Learner]) -> list[dict]:
        """The checks failing for the most learners who are on that check's step."""
        counted: list[dict] = []
        for key in self.order:
            on_step = [learner for learner in active if learner.current == key]
            for check in self.checks.get(key, []):
                failing = [
                    learner
                    for learner in on_step
                    if learner.outcomes.get(key, {}).get(check.name) == "failed"
                ]
                if failing:
                    counted.append(
                        {
                            "step": key,
                            "check": check.name,
                            "doc": check.doc,
                            "guide": check.guide,
                            "guide_url": check.guide_url,
                            "count": len(failing),
                            "on_step": len(on_step),
                            "room": len(active),
                            # Half the room or more, and not one learner alone: stop and explain.
                            "explain_now": len(failing) >= 2
                            and 2 * len(failing) >= len(active),
                        }
                    )
        counted.sort(
            key=lambda entry: (-entry["count"], self.order.index(entry["step"]))
        )
        return counted[:SHOWN_FAILING]

    # --- export -----------------------------------------------------------------------
    def csv_text(self) -> str:
        """One row per learner and step they ran: the session's record, if the instructor
        wants one (nothing is written anywhere unless they download it)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                "name",
                "step",
                "title",
                "checks passed",
                "checks",
                "done",
                "on this step now",
                "last report",
            ]
        )
        titles = {course_step.key: course_step.title for course_step in STEPS}
        for learner in sorted(
            self.learners.values(), key=lambda ln: ln.name.casefold()
        ):
            for key in self.order:
                if key not in learner.outcomes:
                    continue
                cell = self.cell(learner, key)
                writer.writerow(
                    [
                        spreadsheet_safe(learner.name),
                        key,
                        titles[key],
                        cell["passed"],
                        cell["total"],
                        "yes" if cell["state"] == "done" else "no",
                        "yes" if learner.current == key else "no",
                        datetime.fromtimestamp(learner.last_seen).isoformat(
                            timespec="seconds"
                        ),
                    ]
                )
        return out.getvalue()
