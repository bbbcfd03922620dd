"""Size of tracker.js and its time on a page load, measured in Chromium with performance.now().

The script is inlined between two performance.now() marks (its parse, compile and run, no network),
and its DOMContentLoaded work (filling forms, writing the cookie and localStorage) is timed between a
listener registered before it and one registered after it. Each load is a new page; CPU at 1x and 4x
slowed down through the DevTools protocol (Emulation.setCPUThrottlingRate), roughly a cheap phone.
The floor row runs, in the same place, only what no tracker can avoid: one read of document.cookie and
one of localStorage, each a synchronous round trip to the browser's storage on a fresh page.
The minimum of each row is the cost with the least interference from whatever else the host is doing.
"""

import gzip
import statistics
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from amocrm_sandbox import chromium
from amocrm_sandbox.sites import TRACKER_JS, Sites

LOADS = 40
GZIP_BUDGET = 6 * 1024  # the same budget as tests/browser/test_tracker_source.py
SHOP = "www.shop.test"

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Sofas</title>
<script>document.addEventListener('DOMContentLoaded', function () { window.readyBefore = performance.now(); });
window.runBefore = performance.now();</script>
<script>{source}</script>
<script>window.runAfter = performance.now();
document.addEventListener('DOMContentLoaded', function () { window.readyAfter = performance.now(); });</script>
</head><body><h1>Sofas</h1>
<form data-amocrm action="/lead" method="post"><input name="name"><input name="phone"><button>Send</button></form>
</body></html>"""
FLOOR = "var cookies = document.cookie; try { localStorage.getItem('amocrm_tracker'); } catch (e) {}"
MEASURED = "[window.runAfter - window.runBefore, window.readyAfter - window.readyBefore]"
CALLS = 1000
STEADY = f"""() => {{
  const started = performance.now();
  for (let i = 0; i < {CALLS}; i++) window.amocrmTracker.fields();
  return (performance.now() - started) / {CALLS};
}}"""


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(browser, sites: Sites, *, returning: bool, slowdown: int, floor: bool = False) -> list[tuple[float, float]]:
    """LOADS page loads: (script run ms, DOMContentLoaded work ms) each."""
    landing = sites.url(SHOP, "/landing") + "?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=GCLID-1"
    measured = sites.url(SHOP, "/floor") if floor else sites.url(SHOP, "/contacts") if returning else landing
    results = []
    context = browser.new_context()
    for _ in range(LOADS):
        if not returning:  # a first visit: no stored state
            context.close()
            context = browser.new_context()
        page = context.new_page()
        if returning and not context.cookies():
            page.goto(landing)  # once: the visitor came from an ad
        session = context.new_cdp_session(page)
        session.send("Emulation.setCPUThrottlingRate", {"rate": slowdown})
        page.goto(measured)
        page.wait_for_function("window.readyAfter !== undefined")
        run, ready = page.evaluate(MEASURED)
        assert floor or page.locator("form [data-amocrm-tracker]").count() > 0  # the tracker did its work
        results.append((run, ready))
        page.close()
    context.close()
    return results


def main() -> int:
    problem = chromium.missing()
    if problem:
        print(problem)
        return 1
    raw = TRACKER_JS.read_bytes()
    gzipped = len(gzip.compress(raw, compresslevel=9))
    print("## Tracker (`bench/tracker.py`)\n")
    print(f"Chromium {chromium.CHROMIUM}; {LOADS} page loads per row, each a new page; "
          f"load average at the start: {load_average()}.\n")
    print("| tracker.js | bytes |\n| --- | ---: |")
    print(f"| raw | {len(raw)} |\n| gzip -9 (as whitenoise serves it) | {gzipped} |\n")
    print("| visit | CPU | script run ms min / p50 | DOMContentLoaded work ms min / p50 | total ms min / p50 / p95 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    page = PAGE.replace("{source}", raw.decode())
    with Sites() as sites, sync_playwright() as playwright:
        sites.add(SHOP, "/landing", page)
        sites.add(SHOP, "/contacts", page)
        sites.add(SHOP, "/floor", PAGE.replace("{source}", FLOOR))
        browser = chromium.launch(playwright)
        try:
            for name, returning, floor in (("first visit, from an ad", False, False),
                                           ("returning, internal page", True, False),
                                           ("floor: one cookie and one localStorage read", True, True)):
                for slowdown in (1, 4):
                    results = measure(browser, sites, returning=returning, slowdown=slowdown, floor=floor)
                    runs, readies = [r for r, _ in results], [d for _, d in results]
                    totals = [r + d for r, d in results]
                    print(f"| {name} | {slowdown}x | "
                          f"{min(runs):.1f} / {statistics.median(runs):.1f} | "
                          f"{min(readies):.1f} / {statistics.median(readies):.1f} | "
                          f"{min(totals):.1f} / {statistics.median(totals):.1f} / {percentile(totals, 0.95):.1f} |",
                          flush=True)
            page = browser.new_page()
            page.goto(sites.url(SHOP, "/contacts"))
            page.wait_for_function("window.readyAfter !== undefined")
            per_call = page.evaluate(STEADY)
            print(f"\nLoad average at the end: {load_average()}. "
                  f"fields() on a loaded page (a form's submit costs the same): {per_call * 1000:.0f} µs per call, "
                  f"mean of {CALLS} calls.")
        finally:
            browser.close()
    if gzipped > GZIP_BUDGET:
        print(f"\nMissed: tracker.js is {gzipped} bytes gzipped, over the {GZIP_BUDGET} budget.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
