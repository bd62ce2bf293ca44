"""MkDocs hook: the instructor page's timed plans, built from workshop/course.toml (the minutes
of each step) and workshop/plan.toml (how each session does each step).

A page asks for one with a line of its own::

    <!-- timed-plan 90 -->

and gets the table that `make plan 90` prints, so that the page never drifts from the course.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

# Indented markers (inside a tab) get an indented table.
MARKER = re.compile(r"^([ \t]*)<!--\s*timed-plan\s+(\d+)\s*-->[ \t]*$", re.MULTILINE)


def on_config(config):
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # workshop.plan
    return config


def on_page_markdown(markdown, page, config, files):
    if not MARKER.search(markdown):
        return markdown
    from workshop import plan

    def table(found: re.Match) -> str:
        indent, minutes = found.group(1), int(found.group(2))
        try:
            table = plan.markdown_table(minutes)
        except ValueError as problem:
            raise PluginError(f"{page.file.src_uri}: {problem}") from None
        return "\n".join(indent + line for line in table.splitlines())

    return MARKER.sub(table, markdown)
