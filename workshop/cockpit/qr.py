"""The join address as a QR code: in the terminal (make demo) and as SVG (the projector view).

segno encodes; this module only draws its modules. In a terminal each character cell holds two
modules, one above the other (half blocks), so a code for a LAN address fits in about 15 lines.
"""

import io
import os
import sys

import segno

# A border of 2 modules: phones read it at once, and it keeps the code small in a terminal.
BORDER = 2
# ANSI: black ink on a white card, whatever the terminal's own colours are.
INK_ON_CARD = "\x1b[30;47m"
RESET = "\x1b[0m"
# (top dark, bottom dark) -> the character that draws that cell, ink as the foreground.
HALF_BLOCKS = {
    (False, False): " ",
    (True, False): "\u2580",  # upper half block
    (False, True): "\u2584",  # lower half block
    (True, True): "\u2588",  # full block
}


def code(url: str) -> segno.QRCode:
    # Error correction M: still reads from a projector at an angle, yet small.
    return segno.make(url, error="m", micro=False)


def rows(url: str) -> list[list[bool]]:
    """The code's modules with their border, True where dark."""
    return [
        [bool(module) for module in row]
        for row in code(url).matrix_iter(scale=1, border=BORDER)
    ]


def terminal_lines(url: str, colour: bool | None = None) -> list[str]:
    """The code drawn with half blocks: dark modules as ink. With colour (default: when stdout is
    a terminal and NO_COLOR is unset), ink is black on a white card, so that the code reads the
    same on a dark terminal; without it, ink is drawn in the terminal's own text colour and
    light-on-dark terminals show the code inverted (most phone cameras still read it)."""
    if colour is None:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    modules = rows(url)
    if len(modules) % 2:
        modules.append([False] * len(modules[0]))
    lines = []
    for top, bottom in zip(modules[::2], modules[1::2], strict=True):
        cells = "".join(HALF_BLOCKS[pair] for pair in zip(top, bottom, strict=True))
        lines.append(f"{INK_ON_CARD}{cells}{RESET}" if colour else cells)
    return lines


def svg(url: str) -> str:
    """A standalone SVG document of the code (the page scales it to its width)."""
    out = io.BytesIO()
    code(url).save(
        out,
        kind="svg",
        scale=10,
        border=BORDER,
        dark="#000",
        light="#fff",
        omitsize=True,
    )
    return out.getvalue().decode()
