"""How a message travels, drawn at build time as an inline SVG (no script, no network).

Each arrow names the function of the finished chat (course.toml's `finished`) that does
it; a name the code no longer defines fails the build, like a section's data-code.
The drawing takes its colours from the page, so it follows the light and dark schemes.
"""

from html import escape
from pathlib import Path

from mkdocs.exceptions import PluginError

LANES = ["Ada's page", "Ada's handler", "the room", "Grace's outbox", "Grace's page"]
# (from lane, to lane, what happens, the code that does it, the step that teaches it)
MESSAGES = [
    (0, 1, "connects to /ws/chat", "chat_handler", "step 3"),
    (1, 2, "joins: a name, an outbox", "add_client", "step 2"),
    (0, 1, '{"type": "chat", ...}', "chat_handler", "step 3"),
    (1, 1, "reads and checks it", "parse_message", "step 3"),
    (1, 2, "broadcast(payload)", "broadcast", "step 4"),
    (2, 3, "put in every outbox", "Outbox.put", "room"),
    (3, 4, "a delivery thread sends it", "Outbox._deliver", "room"),
    (4, 4, "shows it as text", "show", "step 5"),
]
WIDTH, TOP, ROW = 760, 56, 46


def message_diagram(root: Path) -> str:
    from step_code import names_in  # docs/hooks/step_code.py

    from workshop.steps import finished

    folder = root / "solutions" / finished().folder
    defined = {
        name
        for path in folder.iterdir()
        if path.is_file()
        for name in names_in(path, path.read_text(encoding="utf-8"))
    }
    missing = [code for *_, code, _ in MESSAGES if code not in defined]
    if missing:
        raise PluginError(
            f"the message diagram names {missing}, which solutions/{folder.name} "
            "no longer defines: update docs/hooks/diagram.py"
        )
    gap = WIDTH / len(LANES)
    x = [gap * (i + 0.5) for i in range(len(LANES))]
    height = TOP + ROW * len(MESSAGES) + 20
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" '
        'aria-labelledby="guide-diagram-title" xmlns="http://www.w3.org/2000/svg" '
        'font-family="var(--md-text-font-family), sans-serif" font-size="13">',
        '<title id="guide-diagram-title">How a chat message travels: Ada\'s page '
        "sends it to her handler, which checks it and broadcasts it to the room; the "
        "room puts it in every outbox, and a delivery thread sends it to Grace's page."
        "</title>",
        '<defs><marker id="guide-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="var(--md-accent-fg-color)"/></marker></defs>',
    ]
    for lane, at in zip(LANES, x, strict=True):
        parts.append(
            f'<rect x="{at - gap / 2 + 6}" y="6" width="{gap - 12}" height="30" rx="6" '
            'fill="var(--md-primary-fg-color)"/>'
            f'<text x="{at}" y="26" text-anchor="middle" fill="var(--md-primary-bg-color)" '
            f'font-weight="700">{escape(lane)}</text>'
            f'<line x1="{at}" y1="36" x2="{at}" y2="{height - 8}" '
            'stroke="var(--md-default-fg-color--lighter)" stroke-dasharray="4 4"/>'
        )
    for row, (start, end, what, code, step) in enumerate(MESSAGES):
        y = TOP + ROW * row + 18
        label = f"{what}"
        if start == end:
            at = x[start]
            # The last lane loops to the left, the others to the right.
            side = -1 if start == len(LANES) - 1 else 1
            parts.append(
                f'<path d="M {at} {y} h {36 * side} v 14 h {-34 * side}" fill="none" '
                'stroke="var(--md-accent-fg-color)" stroke-width="2" '
                'marker-end="url(#guide-arrow)"/>'
            )
            text_x = at + 42 * side
            anchor = "start" if side > 0 else "end"
        else:
            x1, x2 = x[start], x[end]
            parts.append(
                f'<line x1="{x1}" y1="{y + 8}" x2="{x2 - 4}" y2="{y + 8}" '
                'stroke="var(--md-accent-fg-color)" stroke-width="2" '
                'marker-end="url(#guide-arrow)"/>'
            )
            text_x, anchor = (x1 + x2) / 2, "middle"
        parts.append(
            f'<text x="{text_x}" y="{y}" text-anchor="{anchor}" '
            # A halo of the page's colour keeps the text readable over the lifelines.
            'stroke="var(--md-default-bg-color)" stroke-width="5" paint-order="stroke" '
            f'fill="var(--md-default-fg-color)">{escape(label)} '
            f'<tspan font-family="var(--md-code-font-family), monospace" font-size="11" '
            f'fill="var(--md-default-fg-color--light)">{escape(code)} · {step}</tspan>'
            "</text>"
        )
    parts.append("</svg>")
    return '<div class="guide-diagram">' + "".join(parts) + "</div>\n"
