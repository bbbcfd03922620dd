"""How the browser tests (and bench/tracker.py) start Chromium: Debian's binary, driven by Playwright.

`playwright install` cannot download browsers on our machines, so Playwright drives the system Chromium;
bin/ensure-chromium installs it (`make test` and `.ci/run` call it).
"""

import os

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

# Playwright adds --headless and a fresh, temporary --user-data-dir to every launch.
# Without the background-networking flags Chromium keeps dialling Google's services, and the closed
# network of our machines refuses those connections, many at a time.
ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Host names under .test (reserved for testing) reach local servers, so a test can serve "customer
    # sites" on domains of their own: cookies there behave as on a real site (www.shop.test shares
    # with shop.test, never with the server on localhost).
    "--host-resolver-rules=MAP *.test 127.0.0.1",
]


def missing() -> str | None:
    """What to do when Chromium is not installed; None when it is."""
    if os.access(CHROMIUM, os.X_OK):
        return None
    return (f"The browser tests need Chromium at {CHROMIUM}, which is missing. Install it with\n"
            "  bin/ensure-chromium   (as root: apt-get install -y --no-install-recommends chromium)\n"
            "or set CHROMIUM_PATH to a Chromium or Chrome binary.")


def require() -> None:
    """Fail the test (never skip it) when Chromium is missing, saying how to install it."""
    import pytest

    problem = missing()
    if problem:
        pytest.fail(problem, pytrace=False)


def launch(playwright):
    """A headless Chromium browser (the caller closes it)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
