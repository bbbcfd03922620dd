"""Browser fixtures: Debian's Chromium driven by Playwright, a page per locale, screenshots under var/screenshots/.

A missing browser fails the test with the install command (amocrm_sandbox/chromium.py): browser tests are
never skipped.
"""

import os
import re
from pathlib import Path

import pytest

from amocrm_sandbox import chromium

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture(scope="package")
def playwright():
    """Playwright's sync API, started for the browser tests only.

    While it is started its event loop counts as running in the main thread (between calls too), and
    Django refuses ORM calls under a running loop: the guard is meant for blocking calls in async views,
    but Playwright's loop is idle whenever the test's own code runs, so the ORM is allowed meanwhile.
    Package scope, not session: the tests after the browser tests get a clean thread and Django's guard.
    """
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as driver:
            yield driver
    finally:
        if before is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="package")
def browser(playwright):
    chromium.require()
    browser = chromium.launch(playwright)
    yield browser
    browser.close()


@pytest.fixture
def locale() -> str:
    """The browser's language (navigator.language and Accept-Language). Override with
    `@pytest.mark.parametrize("locale", ["ru-RU", "en-US"])`."""
    return "en-US"


@pytest.fixture
def context(browser, locale):
    """A fresh browser profile per test: no cookies, no storage."""
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context, request, screenshot):
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        screenshot(page, "failed")


@pytest.fixture
def screenshot(request):
    """`screenshot(page)` saves var/screenshots/<test name>.png (`screenshot(page, "step")`: <test name>-step.png)
    and returns its path."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    (SCREENSHOTS / f"{name}-failed.png").unlink(missing_ok=True)  # from an earlier run

    def save(page, suffix: str = "") -> Path:
        path = SCREENSHOTS / (f"{name}-{suffix}.png" if suffix else f"{name}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.report_call = report
    return report


@pytest.fixture(scope="package")
def _sites():
    from amocrm_sandbox.sites import Sites

    with Sites() as sites:
        yield sites


@pytest.fixture
def sites(_sites):
    """Local web sites on *.test host names (amocrm_sandbox/sites.py), emptied for every test."""
    _sites.reset()
    yield _sites
    _sites.reset()
