"""Each step page's "What you should see" comes from a real run of the step's finished code.

The run rewrites docs/transcripts/<folder>.md only when what it shows has changed (workshop/transcripts.py).
Under CI a change is a failure: the committed guide showed something the code no longer does.
"""

import os

import pytest

from workshop import transcripts
from workshop.steps import ROOT, STEPS


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.folder)
def test_what_you_should_see_is_a_real_run(step):
    screenshot = (ROOT / "docs" / "screenshots" / f"{step.folder}.png").is_file()
    path, written = transcripts.refresh(step, screenshot)
    assert screenshot or path.is_file(), (
        f"{step.guide_page} has neither a screenshot nor a terminal run to show"
    )
    if written and os.environ.get("CI") == "true":
        pytest.fail(
            f"{path.relative_to(ROOT)} was out of date: run `make test` and commit it",
            pytrace=False,
        )
