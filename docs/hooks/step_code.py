"""MkDocs hook: show each step's real code next to its walkthrough.

A page asks for a step's code with a line of its own::

    <!-- step-code 4 -->

Everything from that line down to an optional ``<!-- /step-code -->`` line (or the
end of the page) becomes a two-column region: the page's text on the left, and on
the right three tabs built from the repository's files at build time:

* "What changes": a unified diff, file by file, from ``solutions/step3`` to
  ``solutions/step4`` (a file new in this step is shown whole);
* "Your starter": ``steps/step4``, with its ``TODO(step 4)`` blocks highlighted;
* "Finished step": ``solutions/step4``, with the lines this step adds or changes
  highlighted.

The full files are pulled in with ``pymdownx.snippets`` (``check_paths: true``) and
the highlighted lines are computed here from the same files, so the guide cannot
drift from the code: nobody keeps ``hl_lines`` by hand.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

# The workshop's own modules (the list of steps, the one diff, the TODO blocks), from the
# repository this hook belongs to.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from workshop.diff import changed_lines, unified_diff  # noqa: E402
from workshop.starters import app_files, todo_blocks  # noqa: E402
from workshop.steps import CHAPTERS, NUMBERED  # noqa: E402
from workshop.steps import step as find_step  # noqa: E402

START_MARKER = re.compile(r"^<!--\s*step-code\s+([\w-]+)\s*-->[ \t]*$", re.MULTILINE)
END_MARKER = re.compile(r"^<!--\s*/step-code\s*-->[ \t]*$", re.MULTILINE)

# File suffix -> Pygments lexer. Only these files are shown: the step's tests and
# caches are not part of what the learner writes.
LEXERS = {".py": "python", ".html": "html", ".js": "js", ".css": "css"}

_repo_root: Path | None = None


# The nav sections that list the steps and the chapters: filled from workshop/course.toml.
STEPS_SECTION, CHAPTERS_SECTION = "The steps", "After the steps"


def on_config(config):
    global _repo_root
    _repo_root = Path(config.config_file_path).resolve().parent
    config["nav"] = course_nav(config["nav"])
    return config


def course_nav(nav: list) -> list:
    """mkdocs.yml's nav with the steps and chapters of workshop/course.toml in their
    sections, in course order: the one list of them, never typed twice."""
    sections = {
        title: entries
        for entry in nav
        if isinstance(entry, dict)
        for title, entries in entry.items()
    }
    for title in (STEPS_SECTION, CHAPTERS_SECTION):
        if not isinstance(sections.get(title), list):
            raise PluginError(f'mkdocs.yml: the nav needs a section "{title}"')
    pages = {
        entry
        for section in sections.values()
        if isinstance(section, list)
        for item in section
        if isinstance(item, dict)
        for entry in item.values()
    }
    listed = [s for s in (*NUMBERED, *CHAPTERS) if f"{s.folder}.md" in pages]
    if listed:
        raise PluginError(
            "mkdocs.yml: the nav lists "
            + ", ".join(f"{s.folder}.md" for s in listed)
            + ", which the hook adds from workshop/course.toml: remove them"
        )
    sections[STEPS_SECTION][:0] = [
        {f"{s.key}. {s.title}": f"{s.folder}.md"} for s in NUMBERED
    ]
    sections[CHAPTERS_SECTION][:0] = [{s.title: f"{s.folder}.md"} for s in CHAPTERS]
    return nav


def on_page_markdown(markdown, page, config, files):
    start = START_MARKER.search(markdown)
    if start is None:
        return markdown
    if len(START_MARKER.findall(markdown)) > 1:
        raise PluginError(
            f"{page.file.src_uri}: only one <!-- step-code N --> marker per page"
        )
    step = start.group(1)
    end = END_MARKER.search(markdown, start.end())
    region_end = end.start() if end else len(markdown)
    after = markdown[end.end() :] if end else ""
    region = markdown[start.end() : region_end]
    return (
        markdown[: start.start()]
        + two_columns(region, render_step_code(_repo_root, step))
        + after
    )


def two_columns(text: str, code: str) -> str:
    """Text left, code right on wide screens; guide.css stacks them otherwise."""
    return (
        '<div class="guide-columns" markdown>\n'
        f'<div class="guide-text" markdown>\n\n{text.strip()}\n\n</div>\n'
        # The code is kept out of the search index: three copies of each file would drown the prose.
        f'<div class="guide-code" markdown data-search-exclude="">\n\n{code}\n\n</div>\n'
        "</div>\n"
    )


# --- What the step shows -------------------------------------------------------


def shown_files(step_dir: Path) -> list[str]:
    """Names of the files a learner edits in a step folder, app.py first."""
    names = [name for name in app_files(step_dir) if Path(name).suffix in LEXERS]
    return sorted(names, key=lambda name: (name != "app.py", name))


def todo_lines(lines: list[str], step: str | int) -> list[int]:
    """1-based numbers of the lines inside this step's TODO blocks, markers included."""
    wanted = find_step(step).todo_tag
    return [
        number + 1
        for tag, first, last in todo_blocks(lines)
        if tag == wanted
        for number in range(first, last + 1)
    ]


def line_ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5 9", the hl_lines syntax of pymdownx.highlight."""
    ranges: list[str] = []
    for number in numbers:
        if ranges and number == _range_end(ranges[-1]) + 1:
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{number}"
        else:
            ranges.append(str(number))
    return " ".join(ranges)


def _range_end(text: str) -> int:
    return int(text.rsplit("-", 1)[-1])


# --- Markdown ------------------------------------------------------------------


def render_step_code(root: Path, step: str) -> str:
    found = find_step(step)
    solution_dir = root / "solutions" / found.folder
    starter_dir = root / "steps" / found.folder
    previous_dir = (
        root / "solutions" / (found.previous.folder if found.previous else "none")
    )
    solution_files = shown_files(solution_dir)
    starter_files = shown_files(starter_dir)
    if not solution_files or not starter_files:
        raise PluginError(
            f"step-code {step}: no code found in {solution_dir.relative_to(root)} "
            f"or {starter_dir.relative_to(root)}"
        )
    previous_files = shown_files(previous_dir)

    changes = [
        _changes_block(root, previous_dir, solution_dir, name)
        for name in _union(previous_files, solution_files)
    ]
    starter = [
        _include_block(
            root,
            starter_dir / name,
            todo_lines(_read_lines(starter_dir / name), step),
        )
        for name in starter_files
    ]
    finished = [
        _include_block(
            root,
            solution_dir / name,
            changed_lines(
                _read_lines(previous_dir / name), _read_lines(solution_dir / name)
            ),
        )
        for name in solution_files
    ]
    return "\n".join(
        _tab(title, _print_label(title) + _file_tabs(names, blocks))
        for title, names, blocks in (
            ("What changes", _union(previous_files, solution_files), changes),
            ("Your starter", starter_files, starter),
            ("Finished step", solution_files, finished),
        )
    )


def _changes_block(root: Path, old_dir: Path, new_dir: Path, name: str) -> str:
    old_path, new_path = old_dir / name, new_dir / name
    if not old_path.exists():
        return f"`{_rel(root, new_path)}` is new in this step.\n\n" + _include_block(
            root, new_path, []
        )
    if not new_path.exists():
        return f"`{_rel(root, old_path)}` is removed in this step."
    old, new = _read_lines(old_path), _read_lines(new_path)
    if old == new:
        return f"`{name}` does not change in this step."
    diff = unified_diff(old, new, _rel(root, old_path), _rel(root, new_path))
    fence = _fence_for(diff)
    return f"{fence} diff\n{diff}\n{fence}"


def _include_block(root: Path, path: Path, highlighted: list[int]) -> str:
    rel = _rel(root, path)
    fence = _fence_for(path.read_text(encoding="utf-8"))
    # No line numbers: long lines wrap in the code column, and the walkthrough names functions, not lines.
    options = f'title="{rel}"'
    if highlighted:
        options += f' hl_lines="{line_ranges(highlighted)}"'
    return f'{fence} {LEXERS[path.suffix]} {options}\n--8<-- "{rel}"\n{fence}'


def _print_label(title: str) -> str:
    """The tab's title as a heading that only print shows (paper has no tabs)."""
    return f"{title}\n{{: .guide-print-label }}\n\n"


def _file_tabs(names: list[str], blocks: list[str]) -> str:
    if len(blocks) == 1:
        return blocks[0]
    return "\n\n".join(
        _tab(name, block) for name, block in zip(names, blocks, strict=True)
    )


def _tab(title: str, body: str) -> str:
    return f'=== "{title}"\n\n' + _indent(body) + "\n"


def _indent(text: str) -> str:
    return "\n".join(("    " + line) if line else "" for line in text.splitlines())


def _fence_for(text: str) -> str:
    """A backtick fence longer than any backtick run in the text it encloses."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _union(first: list[str], second: list[str]) -> list[str]:
    return second + [name for name in first if name not in second]


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()
