"""The seven steps of the workshop: one place that names them, their folders and their guide pages."""

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE_URL = "http://127.0.0.1:8001"


@dataclass(frozen=True)
class Step:
    number: int
    title: str

    @property
    def starter_dir(self) -> Path:
        return ROOT / "steps" / f"step{self.number}"

    @property
    def solution_dir(self) -> Path:
        return ROOT / "solutions" / f"step{self.number}"

    @property
    def guide_page(self) -> str:
        return f"docs/step{self.number}.md"


STEPS = [
    Step(1, "Project setup"),
    Step(2, "The App and the client store"),
    Step(3, "The WebSocket handler"),
    Step(4, "Broadcast to every client"),
    Step(5, "The HTML chat client"),
    Step(6, "Who is online"),
    Step(7, "Run the application"),
]


def step(number: int) -> Step:
    if not 1 <= number <= len(STEPS):
        raise ValueError(f"there is no step {number}: the workshop has steps 1 to {len(STEPS)}")
    return STEPS[number - 1]


def guide_link(section: str) -> str:
    """'step3.md#bad-input' -> where the learner reads about it, in the repo and in the served guide."""
    page, _, anchor = section.partition("#")
    url = f"{GUIDE_URL}/{page.removesuffix('.md')}/" + (f"#{anchor}" if anchor else "")
    return f"docs/{section}  (served by `make docs` at {url})"
