"""The workshop's promises about its seven steps, checked the way a learner would meet them.

- Every solution passes its own step's checks and every earlier step's (a later step breaks nothing).
- Every starter passes the earlier steps' checks and fails every one of its own (each check can fail,
  and says why in plain words with a guide section).
- Every starter is the previous solution plus TODO blocks (workshop/starters.py).
"""

import pytest

from workshop.starters import drift
from workshop.steps import STEPS

# A starter's own checks are expected to time out; a short wait keeps those runs fast.
EXPECTED_FAILURE_ENV = {"CHECK_WAIT_SECONDS": "1"}


def checks_up_to(number):
    return [step.starter_dir for step in STEPS[:number]]


@pytest.mark.parametrize("step", STEPS, ids=lambda step: f"step{step.number}")
def test_solution_passes_its_own_and_all_earlier_checks(step, run_checks):
    run = run_checks(checks_up_to(step.number), step.solution_dir)
    failed = [name for name, outcome in run.outcomes.items() if outcome != "passed"]
    assert run.exit_status == 0 and run.outcomes and not failed, (
        f"solutions/step{step.number} should pass the checks of steps 1-{step.number}; not passed: {failed}\n{run.output[-4000:]}"
    )


@pytest.mark.parametrize("step", STEPS[1:], ids=lambda step: f"step{step.number}")
def test_starter_passes_the_earlier_steps_checks(step, run_checks):
    run = run_checks(checks_up_to(step.number - 1), step.starter_dir)
    assert run.exit_status == 0 and run.outcomes, (
        f"steps/step{step.number} starts from step {step.number - 1}'s solution, so it should pass the checks "
        f"of steps 1-{step.number - 1}:\n{run.output[-4000:]}"
    )


@pytest.mark.parametrize("step", STEPS, ids=lambda step: f"step{step.number}")
def test_starter_fails_every_one_of_its_own_checks_in_plain_words(step, run_checks):
    run = run_checks([step.starter_dir], step.starter_dir, EXPECTED_FAILURE_ENV)
    assert run.outcomes, f"steps/step{step.number} has no checks:\n{run.output[-2000:]}"
    passing = [name for name, outcome in run.outcomes.items() if outcome == "passed"]
    assert not passing, (
        f"These checks of step {step.number} pass on the untouched starter, so they cannot tell whether the "
        f"learner did the step: {passing}"
    )
    failures = run.outcomes.keys()
    assert run.output.count("Check: ") >= len(failures), (
        f"Every failure should start with a plain 'Check: ...' line:\n{run.output[-3000:]}"
    )
    assert run.output.count(f"Read: docs/step{step.number}.md#") >= len(failures), (
        f"Every failure should point to a section of docs/step{step.number}.md:\n{run.output[-3000:]}"
    )
    assert "Traceback" not in run.output, f"A failure showed a traceback instead of plain words:\n{run.output[-3000:]}"


@pytest.mark.parametrize("step", STEPS, ids=lambda step: f"step{step.number}")
def test_starter_is_the_previous_solution_plus_todo_blocks(step):
    problems = drift(step)
    assert not problems, "\n".join(problems)
