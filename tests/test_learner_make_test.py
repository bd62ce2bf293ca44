"""`make test`, the README's second command, tells the truth in a learner's clone: it grades the
workshop as shipped, not the learner's steps/, whether their work is committed or not.

The clone is a temporary git clone of the workshop (steps/ as shipped), as in test_tools.py.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workshop import shipped
from workshop.steps import ROOT

AS_LEARNER = ["git", "-c", "user.name=Learner", "-c", "user.email=l@example.invalid"]
# Starter checks of the steps the learner touched: they fail on a finished step 2 graded in
# place of its starter, and drift finds a half-done step 3.
SELECTED = (
    "(starter_fails and (step2 or step3)) or (previous_solution and "
    "(step2 or step3 or step4))"
)


def run(command: list[str], cwd: Path, env: dict | None = None):
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "WORKSHOP_STEPS")
    }
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**environment, **(env or {})},
    )


@pytest.fixture
def learner(tmp_path, shipped_tree) -> Path:
    """A clone of the workshop as shipped, in which a learner finished step 2 and committed
    it, finished step 4 without committing, and is half-way through step 3."""
    upstream = tmp_path / "upstream"
    # The workshop's files as git sees them (what a clone gets), steps/ as shipped.
    tracked = shipped._git(
        "ls-files", "-z", "--cached", "--others", "--exclude-standard"
    )
    for name in shipped._names(tracked):
        source = ROOT / name
        if name.startswith("steps/") or not source.is_file():
            continue
        (upstream / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, upstream / name)
    shutil.copytree(
        shipped_tree.steps_dir,
        upstream / "steps",
        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"),
    )
    for command in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "w"]):
        assert run([*AS_LEARNER, *command], upstream).returncode == 0
    clone = tmp_path / "learner"
    assert (
        run(["git", "clone", "-q", str(upstream), str(clone)], tmp_path).returncode == 0
    )
    (clone / ".venv").symlink_to(ROOT / ".venv")
    os.utime(
        clone / "requirements.txt", (0, 0)
    )  # make never reinstalls the shared .venv

    shutil.copy2(ROOT / "solutions/step2/app.py", clone / "steps/step2/app.py")
    committed = run([*AS_LEARNER, "commit", "-qam", "step 2 done"], clone)
    assert committed.returncode == 0, committed.stderr
    shutil.copy2(ROOT / "solutions/step4/app.py", clone / "steps/step4/app.py")
    half = (clone / "steps/step3/app.py").read_text()
    (clone / "steps/step3/app.py").write_text(
        half.replace("# TODO(step 3): import json", "import json\n# TODO(step 3):")
        + "\n\n@app.websocket('/ws/chat')\ndef chat_handler(ws):\n    ws.recv(\n"
    )
    return clone


def test_make_test_grades_the_starters_as_shipped_not_the_learners_work(learner):
    tested = run(
        ["make", "--no-print-directory", "test"],
        learner,
        env={"PYTEST_ADDOPTS": f"-k '{SELECTED}'"},
    )
    output = tested.stdout + tested.stderr
    assert tested.returncode == 0, output[-5000:]
    assert "Starters and checks: steps/ from commit" in output, output[-3000:]
    assert "last commit your branch shares with origin/main" in output, output[-3000:]
    assert "differs from it in 3 files" in output, output[-3000:]
    assert " passed" in output and " failed" not in output, output[-3000:]


def test_with_the_working_copy_asked_for_the_learners_work_is_graded(learner):
    tested = run(
        ["make", "--no-print-directory", "test"],
        learner,
        env={
            "PYTEST_ADDOPTS": "-k 'previous_solution and step2'",
            "WORKSHOP_STEPS": "working",
        },
    )
    output = tested.stdout + tested.stderr
    assert tested.returncode != 0, output[-3000:]
    assert "this working copy's steps/ (WORKSHOP_STEPS=working)" in output
