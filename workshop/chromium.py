"""Which Chromium the browser checks drive: the one search that both the checks
(workshop/browser.py) and `make doctor` use.

CHROMIUM=/path/to/chrome if set, else a Chromium on PATH, else the one
`playwright install chromium` downloaded. The headless shell (Debian:
`apt-get install chromium-headless-shell`) comes first: the browser without its windows,
the one Playwright itself prefers, and it opens tabs about twice as fast.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from pathlib import Path

SYSTEM_CHROMIUM = ("chromium-headless-shell", "chromium", "chromium-browser")
# Where `playwright install chromium` puts its browsers, per system.
PLAYWRIGHT_BUILDS = (
    "chromium_headless_shell-*/chrome-linux*/headless_shell",
    "chromium-*/chrome-linux*/chrome",
    "chromium_headless_shell-*/chrome-mac*/headless_shell",
    "chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
    "chromium_headless_shell-*/chrome-win*/headless_shell.exe",
    "chromium-*/chrome-win*/chrome.exe",
)


def find_chromium() -> str | None:
    """CHROMIUM's value, or a Chromium on PATH; None: Playwright's own download then."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for candidate in SYSTEM_CHROMIUM:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def playwright_download() -> str | None:
    """The Chromium `playwright install chromium` downloaded, if any."""
    home = Path.home()
    caches = {
        "win32": Path(os.environ.get("LOCALAPPDATA", home)) / "ms-playwright",
        "darwin": home / "Library" / "Caches" / "ms-playwright",
    }
    cache = os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or str(
        caches.get(sys.platform, home / ".cache" / "ms-playwright")
    )
    for pattern in PLAYWRIGHT_BUILDS:
        for found in sorted(glob.glob(os.path.join(cache, pattern)), reverse=True):
            if os.access(found, os.X_OK):
                return found
    return None


def usable_chromium() -> str | None:
    """The browser the checks will drive, if it can run: for `make doctor`."""
    named = find_chromium()
    if named:
        return named if os.access(named, os.X_OK) else None
    return playwright_download()
