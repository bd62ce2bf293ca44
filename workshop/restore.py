"""Put a step folder back to its starter, or forward to its finished code, never losing the learner's work.

    python -m workshop reset 4    # steps/step4 as it was handed out
    python -m workshop solve 4    # solutions/step4's app files, with the step's checks

Both first copy the current steps/stepN into .backups/stepN-<date>-<time>/ (git ignores .backups/) and say so.

Where the pristine starter comes from: git, at the commit this clone shares with the workshop's upstream
branch (`git merge-base HEAD @{upstream}`). Not HEAD: a learner who commits their own work (good practice)
moves HEAD, and "reset" would then hand their own code back. Not the upstream branch's tip either: after a
`git fetch` it may hold newer starters that do not match the checks and solutions in this working tree.
A clone without an upstream branch (a new local branch, a repository made with `git init`) falls back to
origin/HEAD, then to HEAD itself.
"""

import datetime
import subprocess
import sys
from pathlib import Path

from workshop.starters import TODO_START, app_files, folder_files, is_check
from workshop.steps import ROOT, Step

BACKUPS = ROOT / ".backups"


class RestoreError(Exception):
    """Something that stops a reset or solve before it touches the learner's folder."""


def git(*arguments: str) -> str | None:
    """git's output, or None when the command fails (no git, not a clone, no such ref)."""
    try:
        finished = subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True
        )
    except FileNotFoundError:
        return None
    return finished.stdout.strip() if finished.returncode == 0 else None


def pristine_commit() -> tuple[str, str]:
    """(commit, why that one) holding the workshop's starters as handed out; see the module docstring."""
    if git("rev-parse", "--is-inside-work-tree") != "true":
        raise RestoreError(
            f"{ROOT} is not a git clone, so the original starters cannot be found. "
            "Clone the workshop with git, or copy steps/stepN from a fresh download."
        )
    for upstream in ("@{upstream}", "origin/HEAD"):
        name = git("rev-parse", "--abbrev-ref", upstream)
        if name and (base := git("merge-base", "HEAD", upstream)):
            return base, f"the last commit your branch shares with {name}"
    commit = git("rev-parse", "HEAD")
    if not commit:
        raise RestoreError(
            "This git repository has no commit yet, so it holds no starters."
        )
    return commit, "HEAD (this clone has no upstream branch)"


def committed_files(commit: str, folder: Path) -> dict[str, bytes]:
    """The files of folder at commit, by path relative to folder."""
    prefix = folder.relative_to(ROOT).as_posix() + "/"
    listing = git("ls-tree", "-r", "-z", "--name-only", commit, "--", prefix)
    names = [name for name in (listing or "").split("\0") if name]
    if not names:
        raise RestoreError(
            f"Commit {commit[:10]} has no {prefix}: there is no starter to go back to."
        )
    return {
        name.removeprefix(prefix): subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{name}"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        for name in names
    }


def current_files(folder: Path) -> dict[str, bytes]:
    """Everything in folder that a learner could have written (caches aside)."""
    if not folder.is_dir():
        return {}
    return {name: path.read_bytes() for name, path in folder_files(folder).items()}


def back_up(the_step: Step) -> Path | None:
    """Copy steps/stepN into a new, timestamped folder under .backups/; None if there is nothing to copy."""
    files = current_files(the_step.starter_dir)
    if not files:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    backup = BACKUPS / f"{the_step.folder}-{stamp}"
    suffix = 1
    while backup.exists():  # two backups within one second keep both
        suffix += 1
        backup = BACKUPS / f"{the_step.folder}-{stamp}-{suffix}"
    for name, content in files.items():
        (backup / name).parent.mkdir(parents=True, exist_ok=True)
        (backup / name).write_bytes(content)
    return backup


def replace_folder(the_step: Step, wanted: dict[str, bytes], description: str) -> int:
    """Make steps/stepN hold exactly `wanted`, after backing up what is there; print what happened."""
    folder = the_step.starter_dir
    where = folder.relative_to(ROOT)
    if current_files(folder) == wanted:
        print(
            f"{where} already is {description}: nothing to change, so no backup either."
        )
        return 0
    backup = back_up(the_step)
    if backup:
        print(
            f"Saved your {where} in {backup.relative_to(ROOT)}/ (nothing is lost: copy back what you need)."
        )
    for name in current_files(folder):
        if name not in wanted:
            (folder / name).unlink()
    for name, content in wanted.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    print(f"{where} is now {description}.")
    return 0


def reset(the_step: Step) -> int:
    commit, chosen = pristine_commit()
    starter = committed_files(commit, the_step.starter_dir)
    replace_folder(
        the_step,
        starter,
        f"the starter of {the_step.label}, from {chosen} ({commit[:10]})",
    )
    if not any(
        TODO_START.search(content.decode(errors="replace"))
        for content in starter.values()
    ):
        print(
            f"Warning: that version has no TODO({the_step.todo_tag}) block, so it may be work of yours that you "
            f"committed. `git log -- steps/{the_step.folder}` lists the older versions."
        )
    return 0


def solve(the_step: Step) -> int:
    folder, solution = the_step.starter_dir, the_step.solution_dir
    finished = {name: path.read_bytes() for name, path in app_files(solution).items()}
    if not finished:
        raise RestoreError(f"{solution.relative_to(ROOT)} has no files to copy.")
    # The step's checks stay: they grade the folder, and the learner may have run or read
    # them. Those missing (an emptied folder) come back as they were handed out.
    kept = {n: c for n, c in current_files(folder).items() if is_check(n)}
    try:
        commit, chosen = pristine_commit()
        handed_out = {
            n: c for n, c in committed_files(commit, folder).items() if is_check(n)
        }
    except RestoreError as problem:
        if not kept:
            raise RestoreError(
                f"steps/{the_step.folder} has no checks left (test_*.py), and they "
                f"cannot be brought back: {problem}"
            )
        handed_out = {}
    back = {n: c for n, c in handed_out.items() if n not in kept}
    description = f"the finished {the_step.label}"
    if back:
        description += (
            f", with its checks ({', '.join(sorted(back))}) back from {chosen} "
            f"({commit[:10]})"
        )
    if kept:
        description += " (your checks kept)" if not back else "; your other checks kept"
    replace_folder(the_step, {**back, **kept, **finished}, description)
    print(
        f"Next: `make check {the_step.key}` grades it, `make step {the_step.key}` runs it."
    )
    return 0


def run(action: str, the_step: Step) -> int:
    """`python -m workshop reset|solve STEP`: 1 with one line when it cannot be done."""
    try:
        return reset(the_step) if action == "reset" else solve(the_step)
    except RestoreError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
