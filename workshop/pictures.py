"""Whether two screenshots look the same, whatever their bytes.

The guide's screenshots (docs/screenshots/) are retaken by every `make test`. Chromium on
another machine encodes the same page with other bytes, and its text rendering may differ
by a shade on a glyph's edge: saving those would leave a learner's clone dirty after a test
run. So a new screenshot replaces the saved one only when it looks different: another
size, or more than CHANGED_SHARE of its pixels off by more than PIXEL_TOLERANCE in a
channel (a new line of chat, another layout, a changed colour).
"""

import io

from PIL import Image, ImageChops

PIXEL_TOLERANCE = (
    48  # of 255: antialiasing shades stay below, a changed colour does not
)
CHANGED_SHARE = 0.002  # 0.2%: about one short word of chat on a 640 x 400 page


def look_the_same(saved: bytes, new: bytes) -> bool:
    try:
        before, after = (
            Image.open(io.BytesIO(data)).convert("RGB") for data in (saved, new)
        )
    except OSError:  # not a picture (a damaged file): take the new one
        return False
    if before.size != after.size:
        return False
    # Per pixel, the largest difference of its three channels.
    difference = ImageChops.difference(before, after).split()
    largest = ImageChops.lighter(
        ImageChops.lighter(difference[0], difference[1]), difference[2]
    )
    changed = sum(largest.histogram()[PIXEL_TOLERANCE + 1 :])
    return changed <= CHANGED_SHARE * before.width * before.height


def save_if_changed(path, picture: bytes) -> bool:
    """Write `picture` to `path` unless the saved one looks the same; True if written."""
    if path.exists() and look_the_same(path.read_bytes(), picture):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(picture)
    return True
