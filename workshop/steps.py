"""The workshop's steps and chapters, read from workshop/course.toml: the one list of them.

A numbered step ("4") mirrors the tutorial; a chapter ("room") goes beyond it. Both have the same
machinery: steps/<folder> holds the starter and its checks, solutions/<folder> the finished code, and
docs/<folder>.md the guide page.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COURSE_FILE = Path(__file__).with_name("course.toml")
GUIDE_URL = "http://127.0.0.1:8001"


@dataclass(frozen=True)
class Step:
    key: str  # "4" or "room": what a learner types after `make step`
    title: str
    builds_on: str | None  # the key whose finished code this starter begins from
    minutes: int
    # The earlier steps whose checks its solution must still pass; None: all of them.
    # Set only by a chapter that changes the rules on purpose, with the reason.
    keeps_checks_of: tuple[str, ...] | None = None
    keeps_because: str = ""

    @property
    def is_chapter(self) -> bool:
        """A chapter goes beyond the tutorial's seven steps."""
        return not self.key.isdigit()

    @property
    def number(self) -> int:
        """The step's number; chapters have none."""
        if self.is_chapter:
            raise AttributeError(
                f"{self.key} is a chapter: it has a name, not a number"
            )
        return int(self.key)

    @property
    def folder(self) -> str:
        """step4 or room: the folder's name under steps/ and solutions/."""
        return self.key if self.is_chapter else f"step{self.key}"

    @property
    def label(self) -> str:
        """How the workshop's messages name it: "step 4", or "chapter room"."""
        return f"chapter {self.key}" if self.is_chapter else f"step {self.key}"

    @property
    def todo_tag(self) -> str:
        """What its TODO blocks say: TODO(step 4), or TODO(room)."""
        return self.key if self.is_chapter else f"step {self.key}"

    @property
    def starter_dir(self) -> Path:
        return ROOT / "steps" / self.folder

    @property
    def solution_dir(self) -> Path:
        return ROOT / "solutions" / self.folder

    @property
    def guide_page(self) -> str:
        return f"docs/{self.folder}.md"

    @property
    def previous(self) -> "Step | None":
        return step(self.builds_on) if self.builds_on else None

    @property
    def lineage(self) -> list["Step"]:
        """The steps this one builds on, from step 1, and itself last."""
        return [*(self.previous.lineage if self.previous else []), self]

    @property
    def checked_by(self) -> list["Step"]:
        """The steps whose checks its solution must pass: its lineage's, but for the
        earlier ones a chapter that changes the rules no longer keeps (course.toml's
        keeps_checks_of, and keeps_because says why), and itself last."""
        earlier = self.previous.checked_by if self.previous else []
        if self.keeps_checks_of is not None:
            earlier = [s for s in earlier if s.key in self.keeps_checks_of]
        return [*earlier, self]


def _step(entry: dict) -> Step:
    keeps = entry.get("keeps_checks_of")
    because = entry.get("keeps_because", "").strip()
    if (keeps is None) != (not because):
        raise ValueError(
            f"{COURSE_FILE}: step {entry['key']!r} needs keeps_checks_of and "
            "keeps_because together: which earlier checks still apply, and why the "
            "others do not"
        )
    return Step(
        entry["key"],
        entry["title"],
        entry.get("builds_on"),
        entry["minutes"],
        None if keeps is None else tuple(str(key) for key in keeps),
        because,
    )


_COURSE = tomllib.loads(COURSE_FILE.read_text(encoding="utf-8"))
STEPS = [_step(entry) for entry in _COURSE["step"]]
NUMBERED = [s for s in STEPS if not s.is_chapter]
CHAPTERS = [s for s in STEPS if s.is_chapter]


def keys_text() -> str:
    """'1 to 7, or room' for messages that list what a learner may type."""
    numbers = f"{NUMBERED[0].key} to {NUMBERED[-1].key}"
    return numbers + (f", or {', '.join(s.key for s in CHAPTERS)}" if CHAPTERS else "")


def step(key: "str | int") -> Step:
    """The step or chapter a learner named: 4, "4", "step4" or "room"."""
    wanted = str(key).strip().lower().removeprefix("step").strip()
    for candidate in STEPS:
        if candidate.key == wanted:
            return candidate
    raise ValueError(f"there is no step {key!r}: the workshop has {keys_text()}")


def finished() -> Step:
    """The room-grade chat: what make demo and make bench serve by default."""
    return step(_COURSE["finished"])


def guide_link(section: str) -> str:
    """'step3.md#bad-input' -> where the learner reads about it, in the repo and in the served guide."""
    page, _, anchor = section.partition("#")
    url = f"{GUIDE_URL}/{page.removesuffix('.md')}/" + (f"#{anchor}" if anchor else "")
    return f"docs/{section}  (served by `make docs` at {url})"


def _check_kept_checks() -> None:
    """keeps_checks_of names only steps that the step builds on."""
    for each in STEPS:
        earlier = {s.key for s in each.lineage[:-1]}
        unknown = set(each.keeps_checks_of or ()) - earlier
        if unknown:
            raise ValueError(
                f"{COURSE_FILE}: {each.label} keeps the checks of steps it does not "
                f"build on: {', '.join(sorted(unknown))}"
            )


_check_kept_checks()
