"""Loaded into the checks' pytest by `make progress` (`-p workshop.progress_plugin`): browser checks go last,
and run only once the step's other checks have passed.

A browser check is slow (a Chromium per file, tabs, a page reconnecting) and cannot pass while the server
behind the page fails the plain checks, so on an unfinished step it would only spend seconds failing.
Skipped this way, it counts as not passed.
"""

import pytest

NOT_RUN_YET = "not run: the browser checks run once the step's other checks pass"


def uses_browser(item) -> bool:
    return "browser" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items):
    items.sort(key=uses_browser)  # a stable sort: each group keeps its order


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if uses_browser(item) and item.session.testsfailed:
        pytest.skip(NOT_RUN_YET)
