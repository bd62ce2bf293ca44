"""The browser checks never stop running silently: without a browser they skip with one line saying how
to get one, and under CI (CI=true) that skip is a failure."""

import pytest

from workshop.steps import step

# Not imported from workshop.browser: test_end_to_end.py loads it as a pytest plugin, which must import it first.
HOW_TO_GET_ONE = "install one with `sudo apt-get install chromium` (Debian, Ubuntu) or `.venv/bin/python -m playwright install chromium`"


@pytest.fixture
def one_browser_check(shipped_tree):
    return (
        f"{shipped_tree.starter_dir(step(5))}"
        "/test_step5_page.py::test_a_message_typed_in_one_tab_appears_in_both"
    )


NO_BROWSER = {"CHROMIUM": "/nonexistent/chromium"}


def test_without_a_browser_the_checks_skip_and_say_how_to_get_one(
    run_checks, one_browser_check
):
    run = run_checks(
        [one_browser_check], step(5).solution_dir, {**NO_BROWSER, "CI": ""}
    )
    assert list(run.outcomes.values()) == ["skipped"], run.output[-2000:]
    assert (
        "SKIPPED [1] steps/step5/test_step5_page.py:" in run.output
        and HOW_TO_GET_ONE in run.output
    ), run.output[-2000:]


def test_under_ci_a_missing_browser_is_a_failure(run_checks, one_browser_check):
    run = run_checks(
        [one_browser_check], step(5).solution_dir, {**NO_BROWSER, "CI": "true"}
    )
    assert run.exit_status != 0 and list(run.outcomes.values()) in (
        ["failed"],
        ["error"],
    ), run.output[-2000:]
    assert (
        "CI=true, so the browser checks must run: No Chromium" in run.output
        and HOW_TO_GET_ONE in run.output
    ), run.output[-2000:]
    assert "Traceback" not in run.output and "During handling" not in run.output, (
        run.output[-2000:]
    )
