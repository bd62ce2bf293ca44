"""The grader cannot be fooled: every typical wrong answer fails its step, fast and in plain words,
and no right answer fails.

Each mistake of tests/mistakes.toml is made in a copy of its step's finished code, and the step's
checks (as shipped) run on it as a learner runs them. The checks must fail within 10 s, every failure
in plain words, one of them linking the guide section that explains the mistake
(workshop/mistakes.py says how it is judged). `python -m workshop.mistakes ID --show` shows what a
learner sees for one of them.

And the other way round: each right answer of tests/alternatives.toml, written in another style than
solutions/, passes every check of its step.
"""

import re

import pytest

from workshop import mistakes
from workshop.steps import ROOT, STEPS

CATALOGUE = mistakes.load()
ALTERNATIVES = mistakes.load_alternatives()
# The batches run side by side: the checks mostly wait for servers and browsers, and
# each batch also times the finished code, by which a mistake's time is judged.
JOBS = 4


@pytest.fixture(scope="module")
def gate(shipped_tree, finished) -> dict[str, mistakes.Run]:
    """Every mistake and every alternative, a step's together in one pytest (with the
    finished code, whose runs go to `finished`)."""
    runs = mistakes.run_all(
        CATALOGUE + ALTERNATIVES, shipped_tree.steps_dir, jobs=JOBS, finished=finished
    )
    return {run.mistake.id: run for run in runs}


@pytest.fixture(scope="module")
def finished() -> dict[str, mistakes.Run]:
    """Each step's finished code, run by the gate beside its mistakes (by step key)."""
    return {}


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.folder)
def test_the_finished_code_passes_its_own_checks(step, gate, finished):
    """solutions/X passes steps/X's checks (tests/test_steps.py: and the earlier ones)."""
    run = finished[step.key]
    assert run.exit_status == 0 and run.seconds > mistakes.STARTUP_SECONDS, (
        f"solutions/{step.folder} should pass its own checks:\n{run.output[-4000:]}"
    )
    assert not run.failures and not run.skipped, run.output[-4000:]


@pytest.mark.parametrize("mistake", CATALOGUE, ids=lambda mistake: mistake.id)
def test_the_checks_catch_it(mistake, gate):
    result = gate[mistake.id]
    assert result.caught, (
        f"{mistake.id}: {mistake.did}\n"
        + "".join(f"  - {problem}\n" for problem in result.problems)
        + f"What a learner sees:\n{result.output[-4000:]}"
    )


def test_the_catalogue_is_sound():
    """At least 30 mistakes, every step's among them, and every edit still applies."""
    assert len(CATALOGUE) >= 30, f"only {len(CATALOGUE)} mistakes in the catalogue"
    without = {s.key for s in STEPS} - {m.step.key for m in CATALOGUE}
    assert not without, f"no mistake of these steps in the catalogue: {without}"
    for mistake in CATALOGUE:
        changed = (
            mistake.files()
        )  # raises CatalogueError when an edit no longer applies
        finished = {
            name: path.read_text(encoding="utf-8")
            for name, path in mistakes.app_files(mistake.step.solution_dir).items()
        }
        assert changed != finished, f"{mistake.id} changes nothing"


def test_every_mistake_names_a_section_that_exists():
    for mistake in CATALOGUE:
        page, _, anchor = mistake.read.partition("#")
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        assert re.search(rf"\{{#{re.escape(anchor)}[\s}}]", text), (
            f"{mistake.id} points to docs/{mistake.read}, which has no such section"
        )


def test_a_catalogue_with_a_stale_edit_is_refused(tmp_path):
    """An edit whose `find` text left the finished code fails the gate, saying which."""
    broken = tmp_path / "mistakes.toml"
    broken.write_text(
        '[[mistake]]\nid = "step4-gone"\nstep = "4"\ndid = "x"\n'
        'read = "step4.md#broadcast"\n[[mistake.change]]\nfile = "app.py"\n'
        'find = "this text is in no app.py"\nput = ""\n'
    )
    (stale,) = mistakes.load(broken)
    with pytest.raises(mistakes.CatalogueError, match="occurs 0 times"):
        stale.files()


@pytest.mark.parametrize("alternative", ALTERNATIVES, ids=lambda answer: answer.id)
def test_a_right_answer_in_another_style_passes(alternative, gate):
    result = gate[alternative.id]
    assert result.exit_status == 0 and not result.failures and not result.skipped, (
        f"{alternative.id} ({alternative.did}) is right, but the checks of "
        f"{alternative.step.label} do not all pass on it:\n{result.output[-4000:]}"
    )


def test_steps_3_4_and_7_have_a_right_answer_in_another_style():
    covered = {answer.step.key for answer in ALTERNATIVES}
    assert {"3", "4", "7"} <= covered, f"alternatives only for steps {covered}"
    assert not {a.id for a in ALTERNATIVES} & {m.id for m in CATALOGUE}


def test_says_may_name_words_of_which_any_one_will_do(tmp_path):
    """Where timing decides the words (Cello's log line, or the close it causes), a list
    inside `says` asks for one of them; the other texts are all required."""
    catalogue = tmp_path / "mistakes.toml"
    catalogue.write_text(
        '[[mistake]]\nid = "step4-x"\nstep = "4"\ndid = "x"\n'
        'read = "step4.md#broadcast"\nsays = [["closed", "logged"], "lock"]\n'
        '[[mistake.change]]\nfile = "app.py"\nfind = "a"\nput = "b"\n'
    )
    (mistake,) = mistakes.load(catalogue)
    failure = "Check: it broke\nRead: docs/step4.md#broadcast (served by make docs)\n"

    def problems(said: str) -> list[str]:
        run = mistakes.Run(mistake, 1, 1.0, [failure + said])
        return mistakes.judge(run)

    assert problems("the server logged it, holding the lock") == []
    assert problems("the server closed it; the lock") == []
    assert problems("the lock") == ["the failures never say 'closed' or 'logged'"]
    assert problems("it logged") == ["the failures never say 'lock'"]


@pytest.mark.parametrize(
    "stuck_id",
    ["step2-name-taken-takes-the-lock", "room-leave-locks-around-remove-client"],
)
def test_once_the_code_is_found_stuck_on_a_lock_no_other_check_waits(
    run_checks, tmp_path, stuck_id
):
    """A lock taken twice (in the checks' own process, or in a server): the check that
    waited says where, and the app's other checks are skipped at once, saying why,
    instead of each waiting in vain and repeating it."""
    (stuck,) = mistakes.selected(CATALOGUE, [stuck_id])
    run = run_checks([stuck.step.starter_dir], stuck.write(tmp_path))
    failed = [text for outcome, text in run.cases.values() if outcome == "failed"]
    skipped = [text for outcome, text in run.cases.values() if outcome == "skipped"]
    assert len(failed) == 1 and "not re-entrant" in failed[0], run.output[-3000:]
    assert any("stuck on a lock it already holds" in text for text in skipped), (
        run.output[-3000:]
    )
