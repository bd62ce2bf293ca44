"""The scale chapter's checks never stop running silently: without redis-server they skip with one line
saying how to install it, and under CI (CI=true) that skip is a failure, as for the browser checks."""

from workshop.steps import ROOT, step

# Not imported from workshop.redis_server: the checks load workshop.machines as a pytest plugin.
HOW_TO_GET_ONE = "install it with `sudo apt-get install redis-server` (Debian, Ubuntu) or `brew install redis` (macOS)"

ONE_REDIS_CHECK = (
    ROOT
    / "steps"
    / "scale"
    / "test_scale.py::test_users_and_names_cover_the_whole_room"
)
# An app with a broker.py gets a Redis of its own in every check that starts it, the
# earlier steps' too (step 6's lock probe imports the app, and needs none).
ONE_EARLIER_CHECK = (
    ROOT / "steps" / "step6" / "test_step6.py::test_users_lists_everyone_connected"
)
NO_REDIS = {"REDIS_SERVER": "/nonexistent/redis-server"}


def test_without_redis_server_the_checks_skip_and_say_how_to_install_it(run_checks):
    scale = step("scale").solution_dir
    run = run_checks(
        [ONE_REDIS_CHECK, ONE_EARLIER_CHECK], scale, {**NO_REDIS, "CI": ""}
    )
    assert run.outcomes and set(run.outcomes.values()) == {"skipped"}, run.output[
        -2000:
    ]
    assert HOW_TO_GET_ONE in run.output, run.output[-2000:]


def test_under_ci_a_missing_redis_server_is_a_failure(run_checks):
    run = run_checks(
        [ONE_REDIS_CHECK], step("scale").solution_dir, {**NO_REDIS, "CI": "true"}
    )
    assert run.exit_status != 0 and list(run.outcomes.values()) in (
        ["failed"],
        ["error"],
    ), run.output[-2000:]
    assert (
        "CI=true, so the Redis checks must run: No redis-server" in run.output
        and HOW_TO_GET_ONE in run.output
    ), run.output[-2000:]
    assert "Traceback" not in run.output and "During handling" not in run.output, (
        run.output[-2000:]
    )


def test_an_earlier_steps_checks_need_no_redis(run_checks):
    run = run_checks(
        [ONE_EARLIER_CHECK.parent / "test_step6.py"],
        step(6).solution_dir,
        {**NO_REDIS, "CI": "true"},
    )
    assert run.exit_status == 0 and "skipped" not in run.outcomes.values(), run.output[
        -2000:
    ]
