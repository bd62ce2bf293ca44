"""The workshop's promises about its seven steps, checked the way a learner would meet them.

- Every solution passes its own step's checks (run in the mistakes gate, tests/test_mistakes.py)
  and every earlier step's (a later step breaks nothing), but for those a chapter that changes
  the rules on purpose no longer keeps: course.toml names the ones it keeps (keeps_checks_of)
  and says why (keeps_because).
- Every starter passes the earlier steps' checks and fails every one of its own (each check can fail,
  and says why in plain words with a guide section).
- Every starter is the previous solution plus TODO blocks (workshop/starters.py).

Starters and checks come from the shipped tree (tests/conftest.py), never the learner's steps/.
"""

import shutil

import pytest

from conftest import CheckRun, run_step_checks
from workshop.starters import behaviour_changes, drift, typed_lines
from workshop.steps import STEPS
from workshop.steps import step as named_step

# A starter's own checks are expected to time out; a short wait keeps those runs fast, and
# every one of them runs (a learner's run would give up after the first few).
EXPECTED_FAILURE_ENV = {"CHECK_WAIT_SECONDS": "1", "CHECK_GIVE_UP_SECONDS": "never"}


@pytest.fixture
def checks_of(shipped_tree):
    return lambda steps: [shipped_tree.starter_dir(step) for step in steps]


# Its own checks run in the mistakes gate, beside its mistakes (tests/test_mistakes.py).
@pytest.mark.parametrize("step", STEPS[1:], ids=lambda step: step.folder)
def test_solution_passes_all_earlier_checks(step, run_checks, checks_of):
    earlier_steps = step.checked_by[:-1]
    run = run_checks(checks_of(earlier_steps), step.solution_dir)
    failed = [name for name, outcome in run.outcomes.items() if outcome != "passed"]
    earlier = ", ".join(s.key for s in earlier_steps)
    dropped = [s.key for s in step.lineage[:-1] if s not in earlier_steps]
    why = (
        f" (not those of {', '.join(dropped)}: {step.keeps_because})" if dropped else ""
    )
    assert run.exit_status == 0 and run.outcomes and not failed, (
        f"solutions/{step.folder} should pass the checks of {earlier}{why}; not passed: "
        f"{failed}\n{run.output[-4000:]}"
    )


def test_only_a_chapter_that_says_why_drops_earlier_checks():
    """Dropping earlier checks is the exception: a chapter names the ones it keeps and
    why the others no longer apply; every other step keeps its whole lineage's."""
    for step in STEPS:
        if step.keeps_checks_of is None:
            kept_by_previous = step.previous.checked_by if step.previous else []
            assert step.checked_by == [*kept_by_previous, step], step.label
        else:
            assert step.is_chapter and len(step.keeps_because.split()) >= 10, (
                f"{step.label} drops earlier checks: only a chapter may, saying why "
                "in keeps_because"
            )


@pytest.mark.parametrize("step", STEPS[1:], ids=lambda step: step.folder)
def test_starter_passes_the_earlier_steps_checks(
    step, run_checks, checks_of, shipped_tree
):
    """A starter whose code is the finished code it builds on, but for comments and
    files that nothing loads (starters.behaviour_changes), behaves as that code: its
    run is the finished code's own (above, and in the gate), not repeated here."""
    starter = shipped_tree.starter_dir(step)
    if not behaviour_changes(step, starter):
        return
    run = run_checks(checks_of(step.previous.checked_by), starter)
    assert run.exit_status == 0 and run.outcomes, (
        f"steps/{step.folder} starts from solutions/{step.previous.folder}, so it should pass "
        f"the checks of {', '.join(s.key for s in step.previous.checked_by)}:\n{run.output[-4000:]}"
    )


@pytest.fixture(scope="session")
def starters_run(request, shipped_tree, tmp_path_factory) -> CheckRun:
    """The starters' own checks, those this run asks for (-k), in one pytest (Python,
    pytest and Chromium start once), each on its own folder as handed out, every check
    to its end."""
    asked = [
        item.callspec.params["step"]
        for item in request.session.items
        if item.function
        is test_starter_fails_every_one_of_its_own_checks_in_plain_words
    ]
    folder = tmp_path_factory.mktemp("starters")
    checks = [shipped_tree.starter_dir(step) for step in STEPS if step in asked]
    return run_step_checks(
        checks, None, folder, EXPECTED_FAILURE_ENV, shipped_tree.root
    )


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.folder)
def test_starter_fails_every_one_of_its_own_checks_in_plain_words(step, starters_run):
    mine = {
        name: case
        for name, case in starters_run.cases.items()
        if name.startswith(f"steps.{step.folder}.")
    }
    assert mine, f"steps/{step.folder} has no checks:\n{starters_run.output[-2000:]}"
    passing = [name for name, (outcome, _) in mine.items() if outcome == "passed"]
    assert not passing, (
        f"These checks of {step.label} pass on the untouched starter, so they cannot tell "
        f"whether the learner did the step: {passing}"
    )
    output = "\n".join(text for _, text in mine.values())
    assert output.count("Check: ") >= len(mine), (
        f"Every failure should start with a plain 'Check: ...' line:\n{output[-3000:]}"
    )
    assert output.count(f"Read: {step.guide_page}#") >= len(mine), (
        f"Every failure should point to a section of {step.guide_page}:\n{output[-3000:]}"
    )
    assert "Traceback" not in output, (
        f"A failure showed a traceback instead of plain words:\n{output[-3000:]}"
    )


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.folder)
def test_starter_is_the_previous_solution_plus_todo_blocks(step, shipped_tree):
    problems = drift(step, shipped_tree.starter_dir(step))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.folder)
def test_a_learner_types_at_most_40_lines(step, shipped_tree):
    """20 minutes each: the non-comment lines a learner adds, handed-out files aside."""
    typed = typed_lines(step, shipped_tree.starter_dir(step))
    assert sum(typed.values()) <= 40, (
        f"{step.label} asks the learner to type {sum(typed.values())} lines ({typed}): at most "
        "40. Hand out what is not the point of the step, or split it."
    )


def test_a_starter_that_could_behave_otherwise_is_run(tmp_path, shipped_tree):
    """The ladder skips a starter's run only where its code is the previous solution's:
    a changed line, code in a TODO block, or a new file that the code loads, all count."""
    history = named_step("history")
    starter = tmp_path / "history"
    shutil.copytree(shipped_tree.starter_dir(history), starter)
    assert behaviour_changes(history, starter) == []
    app, page = starter / "app.py", starter / "index.html"
    app.write_text(app.read_text() + "\n# a comment changes nothing\n")
    assert behaviour_changes(history, starter) == []
    for edit, said in (
        (lambda: app.write_text(app.read_text() + "HISTORY_SIZE = 5\n"), "app.py"),
        (lambda: (starter / "json.py").write_text(""), "json.py shadows"),
        (lambda: app.write_text("import history\n" + app.read_text()), "app.py"),
        (
            lambda: page.write_text(
                page.read_text().replace(
                    "// END TODO", "let lastChatId = 0;\n// END TODO"
                )
            ),
            "index.html: a TODO block holds more than comments",
        ),
    ):
        shutil.rmtree(starter)
        shutil.copytree(shipped_tree.starter_dir(history), starter)
        edit()
        assert any(said in change for change in behaviour_changes(history, starter))
    ran = [
        s.key for s in STEPS[1:] if behaviour_changes(s, shipped_tree.starter_dir(s))
    ]
    assert "3" in ran and "login" in ran, ran
