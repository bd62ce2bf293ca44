"""The guide read in Chromium: the code follows the reader, opens without spoilers,
highlights honestly, fits its columns, and gives phones an excerpt under each section.

Every step and chapter of workshop/course.toml is read the way a learner reads it: at
1440 px (a laptop), 1280x720 (a projector) and 390 px (a phone).
"""

import difflib
import functools
import http.server
import re
import threading

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from workshop.harness import POLL_MS
from workshop.starters import todo_blocks
from workshop.steps import ROOT, STEPS

# The browser fixture (see workshop/browser.py): skips without Chromium, fails under CI.
pytest_plugins = ["workshop.browser"]

LAPTOP = {"width": 1440, "height": 900}
PROJECTOR = {"width": 1280, "height": 720}
WIDE = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}
HEADING_CODE = re.compile(r'^#{2,3} .*data-code="([^"]*)"', re.MULTILINE)
SHOWN = (".py", ".html", ".js", ".css")
# Every wait on the guide's static pages (a long one costs a passing run nothing): make
# test runs this file beside the mistakes gate, where the 718 KB guard page took 10 s.
GUIDE_WAIT_MS = 30_000


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def guide(guide_site):
    """The built guide, served on a free port of 127.0.0.1: its base URL."""
    handler = functools.partial(Quiet, directory=str(guide_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def open_page(guide, new_browser_context):
    """open_page("step3", LAPTOP) loads a guide page in a fresh context of that size."""

    def open_page(page: str, viewport: dict, **options):
        context = new_browser_context(
            viewport=viewport, reduced_motion="reduce", **options
        )
        context.set_default_timeout(GUIDE_WAIT_MS)
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(f"{guide}/{'' if page == 'index' else page + '/'}")
        tab.wait_for_load_state("load")
        tab.script_errors = errors
        return tab

    return open_page


def definition(name: str) -> re.Pattern:
    """How the named code starts, found in the text independently of the hook."""
    name = name.split(":", 1)[1] if re.match(r"^[\w.-]+\.\w+:", name) else name
    if name == "__main__":
        return re.compile(r'if __name__ == "__main__"')
    if name.startswith("#"):
        return re.compile(rf'id="{re.escape(name[1:])}"')
    if name.startswith("<"):
        return re.compile(re.escape(name[:-1]))
    if re.fullmatch(r"\w+\.on\w+", name):
        return re.compile(rf"{re.escape(name)}\s*=")
    if re.fullmatch(r"\w+\.\w+", name):
        owner, member = name.split(".")
        return re.compile(
            rf"def {member}\b|{owner}\.addEventListener\(\s*['\"]{member}['\"]"
        )
    return re.compile(rf"(def|class|function) {name}\b|^\s*{name}\s*[:=]", re.M)


def step_ids():
    return [step.folder for step in STEPS]


def sections_of(tab) -> list[dict]:
    return tab.evaluate(
        "() => JSON.parse(document.querySelector('.guide-code-data').textContent).sections"
    )


def marked_text(tab) -> str:
    return tab.evaluate(
        """() => [...document.querySelectorAll(
            '.guide-code .guide-view:not([hidden]) .guide-pane:not([hidden]) .is-focus')
        ].map(r => r.textContent).join('')"""
    )


def bring_to_reading_line(tab, anchor: str) -> None:
    """Scroll the page as a reader does: the section's heading a fifth down the window."""
    tab.evaluate(
        """id => { const h = document.getElementById(id);
                 scrollTo(0, h.getBoundingClientRect().top + scrollY - innerHeight * 0.2); }""",
        anchor,
    )


FOCUS_IN_VIEW = """id => {
    const panel = document.querySelector('.guide-code');
    if (panel.dataset.section !== id) return false;
    const rows = panel.querySelectorAll(
        '.guide-view:not([hidden]) .guide-pane:not([hidden]) .gl.is-focus');
    if (!rows.length) return false;
    const box = rows[0].closest('.guide-scroll').getBoundingClientRect();
    const first = rows[0].getBoundingClientRect();
    const margin = 2;
    return first.top >= box.top - margin && first.bottom <= box.bottom + margin
        && first.height > 0;
}"""


@pytest.mark.parametrize("step", STEPS, ids=step_ids())
def test_the_code_follows_the_reader(open_page, step):
    """Each section brings the code it names into view in the panel, and marks it:
    the starter by default (a TODO block where the code is still to write), the
    finished code one click away."""
    tab = open_page(step.folder, LAPTOP)
    page_names = HEADING_CODE.findall(
        (ROOT / step.guide_page).read_text(encoding="utf-8")
    )
    sections = sections_of(tab)
    tied = [section for section in sections if section["targets"]]
    assert tied, f"{step.guide_page}: no section is tied to any code"
    named = {name for names in page_names for name in names.split()}
    known = {target["name"] for section in tied for target in section["targets"]}
    assert named <= known, (
        f"{step.guide_page}: sections name {sorted(named - known)}, the panel shows none"
    )
    selected = tab.locator(".guide-code .guide-tabs--views [aria-selected=true]")
    assert selected.inner_text() == "Your starter", "no spoilers: open on the starter"

    for view in ("Your starter", "Finished step"):
        tab.get_by_role("tab", name=view, exact=True).first.click()
        for section in tied:
            bring_to_reading_line(tab, section["id"])
            try:
                tab.wait_for_function(FOCUS_IN_VIEW, arg=section["id"], polling=POLL_MS)
            except PlaywrightTimeout:
                raise AssertionError(
                    f"{step.guide_page}#{section['id']} ({view}): the panel never "
                    f"brought {[t['name'] for t in section['targets']]} into view"
                ) from None
            text = marked_text(tab)
            first = section["targets"][0]
            pattern = definition(first["name"])
            if view == "Your starter":
                assert pattern.search(text) or "TODO(" in text, (
                    f"{step.guide_page}#{section['id']}: the starter marks neither "
                    f"{first['name']} nor its TODO block, but:\n{text[:400]}"
                )
            else:
                assert pattern.search(text), (
                    f"{step.guide_page}#{section['id']}: the finished code marks "
                    f"other lines than {first['name']}:\n{text[:400]}"
                )

    # A code name in the text shows its code when clicked.
    links = tab.locator(".guide-text .guide-code-link")
    assert links.count(), f"{step.guide_page}: no code name in the text links to code"
    link = links.last
    name = link.inner_text().removesuffix("()")
    link.scroll_into_view_if_needed()
    link.click()
    tab.wait_for_function(
        "name => document.querySelector('.guide-code').dataset.showing === name",
        arg=name,
        polling=POLL_MS,
    )
    assert definition(name).search(marked_text(tab)), (
        f"{step.guide_page}: clicking `{name}` marks other code"
    )
    assert not tab.script_errors, tab.script_errors


def changed(old: list[str], new: list[str]) -> set[int]:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return {
        n + 1
        for tag, _, _, j1, j2 in matcher.get_opcodes()
        if tag in ("replace", "insert")
        for n in range(j1, j2)
    }


def learner_files(folder) -> dict:
    return {
        p.name: p.read_text(encoding="utf-8").splitlines()
        for p in sorted(folder.iterdir())
        if p.suffix in SHOWN and not p.name.startswith(("test_", "conftest"))
    }


PANE_ROWS = """([view, file]) => {
    const pane = document.querySelector(
        `.guide-code .guide-view[data-view="${view}"] .guide-pane[data-file="${file}"]`);
    if (!pane) return null;
    return {
        note: pane.querySelector('.guide-file__note')?.textContent || '',
        copy: pane.querySelector('[data-copy]').dataset.copy,
        rows: [...pane.querySelectorAll('.gl:not(.fold)')].map(r => ({
            n: r.dataset.n ? Number(r.dataset.n) : null,
            cls: r.className,
            number: getComputedStyle(r, '::before').content,
            bg: getComputedStyle(r).backgroundColor,
        })),
    };
}"""


def luminance(css: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("step", STEPS, ids=step_ids())
def test_highlights_are_honest(open_page, step):
    """Line numbers; the starter marks its TODO blocks, the finished code only what the
    learner types; handed-out files say so; no tab for a file that does not change;
    copying the changes copies the new file."""
    tab = open_page(step.folder, PROJECTOR)
    starter, finished = (
        learner_files(step.starter_dir),
        learner_files(step.solution_dir),
    )
    previous = learner_files(step.previous.solution_dir) if step.previous else {}
    for name, lines in finished.items():
        mine = starter.get(name, [])
        shown = tab.evaluate(PANE_ROWS, ["finished", name])
        assert shown, f"{step.guide_page}: no finished {name}"
        assert [r["n"] for r in shown["rows"]] == list(range(1, len(lines) + 1))
        assert all(r["number"] == f'"{r["n"]}"' for r in shown["rows"]), (
            f"{step.guide_page}: {name} has no line numbers"
        )
        typed = {r["n"] for r in shown["rows"] if "is-typed" in r["cls"]}
        expected = {n for n in changed(mine, lines) if lines[n - 1].strip()}
        if mine == lines:
            assert not typed, f"{name} is handed out: nothing to highlight"
            if name not in previous:
                assert "handed out" in shown["note"], f"{name}: say it is handed out"
        else:
            assert typed == expected, (
                f"{step.guide_page}: the finished {name} highlights lines "
                f"{sorted(typed - expected)} the learner does not type, or misses "
                f"{sorted(expected - typed)}"
            )
        if typed:
            plain = next(r for r in shown["rows"] if r["cls"] == "gl")
            marked = next(r for r in shown["rows"] if r["n"] in typed)
            assert abs(luminance(marked["bg"]) - luminance(plain["bg"])) > 0.08, (
                "a highlight must show on a projector"
            )
        todo = tab.evaluate(PANE_ROWS, ["starter", name])
        blocks = {
            n + 1
            for tag, first, last in todo_blocks(mine)
            if tag == step.todo_tag
            for n in range(first, last + 1)
        }
        assert {r["n"] for r in todo["rows"] if "is-todo" in r["cls"]} == blocks
        changes = tab.evaluate(PANE_ROWS, ["changes", name])
        if previous.get(name) == lines:
            assert changes is None, f"{step.guide_page}: a tab for unchanged {name}"
        else:
            assert changes and changes["copy"] == "\n".join(lines) + "\n", (
                f"{step.guide_page}: copying the changes of {name} must copy the new file"
            )


def test_copying_the_changes_copies_the_new_file(open_page):
    """Through the copy button, as a learner does (the clipboard of the browser)."""
    step = next(s for s in STEPS if s.previous)
    tab = open_page(
        step.folder, LAPTOP, permissions=["clipboard-read", "clipboard-write"]
    )
    tab.get_by_role("tab", name="What changes", exact=True).first.click()
    pane = tab.locator(
        ".guide-code .guide-view[data-view=changes] .guide-pane:not([hidden])"
    )
    pane.hover()
    button = pane.locator("[data-md-type=copy], .md-clipboard").first
    button.click()
    copied = tab.evaluate("() => navigator.clipboard.readText()")
    name = pane.get_attribute("data-file")
    new = (step.solution_dir / name).read_text(encoding="utf-8")
    assert copied == new.rstrip(), "the copy button of a diff copies the new file"


def test_every_shown_file_fits_88_columns():
    """ruff holds Python to 88 columns; this holds every file a panel shows, HTML too."""
    too_wide = [
        f"{path.relative_to(ROOT)}:{number}: {len(line)} columns"
        for top in ("steps", "solutions")
        for path in sorted((ROOT / top).rglob("*"))
        if path.suffix in SHOWN and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if len(line.expandtabs(4)) > 88
    ]
    assert not too_wide, "lines wider than the code panels:\n" + "\n".join(too_wide)


LAYOUT = """() => {
    const text = document.querySelector('.guide-text').getBoundingClientRect();
    const nav = document.querySelector('.md-sidebar--primary');
    // Code is monospace: in each view, the file with the longest line is the one that
    // would be cut first. Only it is laid out (all of them at once cost seconds a page).
    const columns = code => Math.max(...code.textContent.split('\\n').map(
        line => [...line.replace(/\\t/g, '    ')].reduce(
            (n, c) => n + (c.codePointAt(0) > 0x10ff ? 2 : 1), 0)));
    const cut = [];
    for (const view of document.querySelectorAll('.guide-code .guide-view')) {
      const codes = [...view.querySelectorAll('pre > code')].map(
          code => [columns(code), code]);
      if (!codes.length) continue;
      const [, widest] = codes.reduce((a, b) => b[0] > a[0] ? b : a);
      const hidden = [view, widest.closest('.guide-pane')].filter(e => e && e.hidden);
      hidden.forEach(e => { e.hidden = false; });
      if (widest.scrollWidth > widest.clientWidth + 1)
        cut.push(widest.closest('.guide-file').id);
      hidden.forEach(e => { e.hidden = true; });
    }
    return {text: text.width, cut, nav: getComputedStyle(nav).display};
}"""
GRID = "() => document.querySelector('.md-main__inner').getBoundingClientRect().width"


def test_two_columns_have_the_width_they_need(guide, new_browser_context):
    """At 1280, 1440 and 1920 px: no code line is cut, the text column stays readable,
    the site navigation folds away on step pages, and every page has the same width."""
    sizes = (PROJECTOR, LAPTOP, WIDE)
    tab = new_browser_context(viewport=sizes[0]).new_page()
    widths: dict[int, dict[str, float]] = {size["width"]: {} for size in sizes}
    pages = [(step.guide_page, f"{step.folder}/") for step in STEPS]
    pages += [
        (f"docs/{name or 'index'}.md", f"{name}/" if name else "")
        for name in ("", "troubleshooting", "instructor", "performance")
    ]
    for page, url in pages:
        tab.goto(f"{guide}/{url}")
        # Each size lays out the whole page again: the one it loaded at comes first.
        for size in sorted(sizes, key=lambda size: size != tab.viewport_size):
            if size != tab.viewport_size:
                tab.set_viewport_size(size)
            widths[size["width"]][page] = tab.evaluate(GRID)
            if not url.startswith(tuple(step.folder + "/" for step in STEPS)):
                continue
            layout = tab.evaluate(LAYOUT)
            where = f"{page} at {size['width']} px"
            assert not layout["cut"], f"{where}: lines cut in {layout['cut']}"
            assert layout["text"] >= 380, (
                f"{where}: a text column of {layout['text']:.0f} px"
            )
            assert layout["nav"] == "none", f"{where}: the left navigation stays"
    for width, grid in widths.items():
        assert len(set(grid.values())) == 1, (
            f"at {width} px, page widths differ: {grid}"
        )


@pytest.mark.parametrize("step", STEPS, ids=step_ids())
def test_a_phone_shows_each_sections_code_under_it(open_page, step):
    tab = open_page(step.folder, PHONE, is_mobile=True, has_touch=True)
    found = tab.evaluate(
        """() => {
          const panel = document.querySelector('.guide-code');
          const data = JSON.parse(panel.querySelector('.guide-code-data').textContent);
          const out = [];
          for (const section of data.sections.filter(s => s.targets.length)) {
            const heading = document.getElementById(section.id);
            // The section's own excerpt: after its heading, before the next heading.
            let node = heading.nextElementSibling, excerpt = null;
            while (node && !/^H[23]$/.test(node.tagName)) {
              if (node.matches('.guide-excerpt')) { excerpt = node; break; }
              node = node.nextElementSibling;
            }
            const shown = excerpt && excerpt.querySelector('.guide-view:not([hidden])');
            const box = excerpt ? excerpt.getBoundingClientRect() : null;
            out.push({id: section.id, name: section.targets[0].name,
                      visible: !!(box && box.width > 0 && box.height > 0),
                      width: box ? box.width : 0,
                      text: shown ? [...shown.querySelectorAll('pre')].map(
                        p => p.textContent).join('\\n') : '',
                      finished: excerpt ? [...excerpt.querySelectorAll(
                        '.guide-view[data-view=finished] pre')].map(v => v.textContent).join('\\n') : ''});
          }
          return {sections: out, panel: getComputedStyle(panel).display,
                  page: document.scrollingElement.scrollWidth, view: innerWidth};
        }"""
    )
    assert found["panel"] == "none", "a phone gets excerpts, not the side panel"
    assert found["page"] <= found["view"], "the page scrolls sideways on a phone"
    assert found["sections"], f"{step.guide_page}: no section has code"
    for section in found["sections"]:
        where = f"{step.guide_page}#{section['id']}"
        assert section["visible"], f"{where}: no excerpt of the code under the section"
        assert section["width"] <= PHONE["width"], f"{where}: the excerpt is too wide"
        pattern = definition(section["name"])
        assert pattern.search(section["text"]) or "TODO(" in section["text"], (
            f"{where}: the excerpt does not show {section['name']}"
        )
        assert pattern.search(section["finished"]), (
            f"{where}: the finished excerpt does not show {section['name']}"
        )
