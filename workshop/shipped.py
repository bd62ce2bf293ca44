"""The starters and their checks as the workshop ships them, for `make test`.

A learner edits steps/: that is the point. So the repository's tests never grade the working copy of
steps/: they take steps/ from git, at the commit that `make reset` restores starters from
(workshop/restore.py's pristine_commit(): the last commit shared with the upstream branch, or HEAD in a
clone without one), whether the learner committed their work or not. `make test` then says the truth
about the workshop, never about the learner's half-done step 4.

A maintainer who edits a starter or a check tests the working copy instead:

    WORKSHOP_STEPS=working make test        (or: make test WORKSHOP_STEPS=working)
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workshop.restore import RestoreError, pristine_commit
from workshop.steps import ROOT

ENVIRONMENT_VARIABLE = "WORKSHOP_STEPS"
# Beside steps/ in a learner's clone, and needed to run the checks the way they do.
CHECK_CONFIGURATION = ("conftest.py", "pytest.ini")


@dataclass(frozen=True)
class Steps:
    """Where the step folders to test are, and where they came from."""

    root: Path  # holds steps/, conftest.py and pytest.ini
    commit: str | None  # None: the working copy
    description: str

    @property
    def steps_dir(self) -> Path:
        return self.root / "steps"

    def folder(self, key_folder: str) -> Path:
        """steps/<folder> as shipped: its starter and its checks."""
        return self.steps_dir / key_folder


def wants_working_copy() -> bool:
    return os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() in (
        "working",
        "working-copy",
        "1",
    )


def _git(*arguments: str) -> bytes:
    return subprocess.run(
        ["git", *arguments], cwd=ROOT, capture_output=True, check=True
    ).stdout


def export(commit: str, destination: Path) -> None:
    """steps/ at commit, written into destination/steps/ (file modes aside)."""
    listing = _git("ls-tree", "-r", "-z", "--name-only", commit, "--", "steps/")
    names = [name.decode() for name in listing.split(b"\0") if name]
    if not names:
        raise RestoreError(f"commit {commit[:10]} holds no steps/")
    for name in names:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_git("cat-file", "blob", f"{commit}:{name}"))


def edited_files(commit: str) -> set[str]:
    """The files under steps/ that differ from commit in the working copy, new ones included."""
    changed = _git("diff", "--name-only", "-z", commit, "--", "steps/")
    new = _git("ls-files", "-z", "--others", "--exclude-standard", "--", "steps/")
    return {name.decode() for name in (changed + b"\0" + new).split(b"\0") if name}


@contextlib.contextmanager
def steps(working_copy: bool | None = None):
    """The step folders to test: shipped (from git, in a temporary folder) unless asked otherwise."""
    if working_copy is None:
        working_copy = wants_working_copy()
    how = f"{ENVIRONMENT_VARIABLE}=working make test"
    if working_copy:
        yield Steps(
            ROOT,
            None,
            f"Starters and checks: this working copy's steps/ ({ENVIRONMENT_VARIABLE}"
            "=working).",
        )
        return
    try:
        commit, why = pristine_commit()
    except RestoreError as problem:
        yield Steps(
            ROOT,
            None,
            f"Starters and checks: this working copy's steps/ ({problem})",
        )
        return
    root = Path(tempfile.mkdtemp(prefix="shipped-steps-"))
    try:
        export(commit, root)
        for name in CHECK_CONFIGURATION:
            shutil.copy2(ROOT / name, root / name)
        edited = len(edited_files(commit))
        note = (
            f" Your steps/ differs from it in {edited} files, not tested here; "
            f"`{how}` tests them instead."
            if edited
            else f" `{how}` tests the working copy's steps/ instead."
        )
        yield Steps(
            root,
            commit,
            f"Starters and checks: steps/ from commit {commit[:10]}, {why}.{note}",
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
