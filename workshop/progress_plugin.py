"""Loaded into the checks' pytest by `make progress` (`-p workshop.progress_plugin`): browser and
crowd checks go last, and run only once the step's other checks have passed.

A browser check is slow (a Chromium per file, tabs, a page reconnecting), and a crowd check
(`@pytest.mark.crowd`) fills the server with hundreds of connections; neither can pass while the
server fails the plain checks, so on an unfinished step they would only spend seconds failing.
Skipped this way, they count as not passed.
"""

import pytest

NOT_RUN_YET = "not run: browser and crowd checks run once the step's other checks pass"


def goes_last(item) -> bool:
    uses_browser = "browser" in getattr(item, "fixturenames", ())
    return uses_browser or item.get_closest_marker("crowd") is not None


def pytest_collection_modifyitems(items):
    items.sort(key=goes_last)  # a stable sort: each group keeps its order


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if goes_last(item) and item.session.testsfailed:
        pytest.skip(NOT_RUN_YET)
