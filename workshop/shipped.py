"""The workshop as shipped, for `make test`: this working copy, but steps/ as handed out.

A learner edits steps/: that is the point. So the repository's tests never grade the working copy of
steps/. They run in a copy of the working tree whose steps/ (the starters and their checks) comes from
git, at the commit that `make reset` restores starters from (workshop/restore.py's pristine_commit():
the last commit shared with the upstream branch, or HEAD in a clone without one), whether the learner
committed their work or not. `make test` then says the truth about the workshop, never about the
learner's half-done step 4. Everything else (workshop/, solutions/, docs/, tests/) is the working
copy's, so a maintainer's edits there are tested as they are.

A maintainer who edits a starter or a check tests the working copy's steps/ instead:

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
from workshop.steps import ROOT, Step

ENVIRONMENT_VARIABLE = "WORKSHOP_STEPS"
HOW_TO_TEST_THE_WORKING_COPY = f"{ENVIRONMENT_VARIABLE}=working make test"


@dataclass(frozen=True)
class Shipped:
    """A tree to test: the working copy itself, or a copy of it with steps/ as shipped."""

    root: Path
    commit: str | None  # where steps/ came from; None: the working copy's own
    description: str

    @property
    def steps_dir(self) -> Path:
        return self.root / "steps"

    def starter_dir(self, step: Step) -> Path:
        """steps/<folder> as shipped: the starter and its checks."""
        return self.steps_dir / step.folder

    def solution_dir(self, step: Step) -> Path:
        return self.root / "solutions" / step.folder


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


def _names(output: bytes) -> list[str]:
    return [name.decode() for name in output.split(b"\0") if name]


def edited_files(commit: str, *paths: str) -> set[str]:
    """The files under paths (steps/ by default) that differ from commit in the working
    copy, new ones included."""
    paths = paths or ("steps/",)
    changed = _git("diff", "--name-only", "-z", commit, "--", *paths)
    new = _git("ls-files", "-z", "--others", "--exclude-standard", "--", *paths)
    return set(_names(changed) + _names(new))


def build(commit: str, destination: Path) -> None:
    """The working tree's files (as git sees them: ignored ones aside) in destination, with
    steps/ as it is at commit."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in _names(listed):
        source = ROOT / name
        if name.startswith("steps/") or not source.is_file():
            continue
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination / name)
    shipped = _names(_git("ls-tree", "-r", "-z", "--name-only", commit, "--", "steps/"))
    if not shipped:
        raise RestoreError(f"commit {commit[:10]} holds no steps/")
    for name in shipped:
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        (destination / name).write_bytes(_git("cat-file", "blob", f"{commit}:{name}"))
    if (ROOT / ".venv").exists():
        (destination / ".venv").symlink_to((ROOT / ".venv").resolve())
        # Older than .venv/.installed: make in the copy never reinstalls into the shared .venv.
        os.utime(destination / "requirements.txt", (0, 0))


@contextlib.contextmanager
def tree(working_copy: bool | None = None):
    """The tree to test (a Shipped): steps/ from git unless asked otherwise."""
    if working_copy is None:
        working_copy = wants_working_copy()
    if working_copy:
        yield Shipped(
            ROOT,
            None,
            f"Starters and checks: this working copy's steps/ ({ENVIRONMENT_VARIABLE}"
            "=working).",
        )
        return
    try:
        commit, why = pristine_commit()
        _git("cat-file", "-e", f"{commit}:steps")
    except (RestoreError, subprocess.CalledProcessError) as problem:
        yield Shipped(
            ROOT,
            None,
            "Starters and checks: this working copy's steps/ (none to compare with in "
            f"git: {str(problem).strip() or 'no steps/ committed'}).",
        )
        return
    root = Path(tempfile.mkdtemp(prefix="workshop-shipped-"))
    try:
        build(commit, root)
        edited = len(edited_files(commit))
        note = (
            f" Your steps/ differs from it in {edited} files, not tested here; "
            f"`{HOW_TO_TEST_THE_WORKING_COPY}` tests them instead."
            if edited
            else f" `{HOW_TO_TEST_THE_WORKING_COPY}` tests the working copy's instead."
        )
        yield Shipped(
            root,
            commit,
            f"Starters and checks: steps/ from commit {commit[:10]}, {why}.{note}",
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
