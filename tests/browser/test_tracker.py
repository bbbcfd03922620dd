"""The tracker script (leads/static/amocrm/tracker.js) on a customer's site, in Chromium.

The shop is www.shop.test, ads come from ads.test, searches from search.test, and the script from another
origin (the live Django server, or crm.test): see amocrm_sandbox/sites.py.
"""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

import pytest

from amocrm_sandbox.sites import TRACKER_PATH, Sites

pytestmark = pytest.mark.browser

SHOP, ADS, SEARCH, CRM = "www.shop.test", "ads.test", "search.test", "crm.test"
COOKIE = "amocrm_tracker"
FORM = """<form data-amocrm action="/lead" method="post">
  <input name="name" value="Ivan"> <input name="phone" value="+79123456789"> <button>Send</button>
</form>"""
SPRING = "utm_source=google&utm_medium=cpc&utm_campaign=spring&utm_term=sofa&utm_content=ad1"
SPRING_TOUCH = {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring", "utm_term": "sofa",
                "utm_content": "ad1"}
DAY_MS = 86_400_000


def html(title: str, body: str = "", *, tracker: str | None, head: str = "") -> str:
    script = f'<script src="{tracker}" async></script>' if tracker else ""
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>{head}{script}</head>'
            f"<body><h1>{title}</h1>{body}</body></html>")


def tracker_url(sites: Sites) -> str:
    return sites.url(CRM, TRACKER_PATH)


def visit(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("window.amocrmTracker")


def follow(page, selector: str) -> None:
    """Click a link: the browser sends the referrer, as a visitor's click does."""
    with page.expect_navigation():
        page.click(selector)
    page.wait_for_function("window.amocrmTracker")


def submit(page, sites: Sites, form: str = "form[data-amocrm]") -> dict[str, str]:
    """Post the form as a browser does without a script of the site (a plain form post); what the server got."""
    posted = len(sites.posts)
    with page.expect_navigation():
        page.click(f"{form} button")
    assert len(sites.posts) == posted + 1
    return sites.posts[-1].form()


def fields(page) -> dict:
    return page.evaluate("window.amocrmTracker.fields()")


def flat(data: dict) -> dict[str, str]:
    """fields() as the form posts it: first_touch as bracket keys."""
    out = {key: value for key, value in data.items() if key != "first_touch"}
    out.update({f"first_touch[{key}]": value for key, value in data.get("first_touch", {}).items()})
    return out


# Shown on the page before a screenshot, read without calling the tracker (no side effects).
PANEL = """() => {
  const cookie = document.cookie.split('; ').filter(c => c.startsWith('amocrm_tracker='))
    .map(c => decodeURIComponent(c.slice(15)));
  const forms = [...document.querySelectorAll('form')].map(form => (form.id || 'form') + ': ' +
    [...form.elements].filter(e => e.name && e.type === 'hidden').map(e => e.name + '=' + e.value).join('  '));
  const panel = document.createElement('pre');
  panel.style.cssText = 'font-size:11px;white-space:pre-wrap;background:#f4f4f4;padding:8px;border-top:2px solid #888';
  panel.textContent = ['page: ' + location.href, 'cookie: ' + (cookie.join(' | ') || '(none)'),
    'localStorage: ' + (localStorage.getItem('amocrm_tracker') || '(none)'), 'hidden form fields:', ...forms]
    .join('\\n');
  document.body.appendChild(panel);
}"""


def snap(page, screenshot, suffix: str = "") -> None:
    """A screenshot with a panel of what the tracker stored and put into the forms."""
    page.evaluate(PANEL)
    screenshot(page, suffix)


def tracker_cookie(context) -> dict | None:
    found = [cookie for cookie in context.cookies() if cookie["name"] == COOKIE]
    assert len(found) <= 1, found
    return found[0] if found else None


def local_state(page) -> str | None:
    return page.evaluate(f"localStorage.getItem('{COOKIE}')")


def own_fields(posted: dict[str, str]) -> dict[str, str]:
    return {key: posted[key] for key in ("name", "phone")}


def test_a_visitor_journey_posts_the_first_and_the_last_touch(live_server, sites, page, screenshot):
    """Lands from a Google ad, comes back through a Yandex ad on another site, browses, sends the form."""
    tracker = f"{live_server.url}{TRACKER_PATH}"  # served by Django's static files, another origin than the shop
    counters = ('<script>document.cookie = "_ym_uid=1700000000123456789; path=/";'
                'document.cookie = "_ga=GA1.1.123456789.1700000000; path=/";'
                'document.cookie = "roistat_visit=4242; path=/";</script>')
    landing = sites.add(SHOP, "/landing", html("Sofas", head=counters, tracker=tracker)) + f"?{SPRING}&gclid=GCLID-1"
    catalog = sites.url(SHOP, "/catalog") + "?utm_source=yandex&utm_medium=cpc&utm_campaign=autumn&yclid=777"
    sites.add(ADS, "/banner", html("An ad", f'<a id="ad" href="{catalog}">Sofas -20%</a>', tracker=None))
    sites.add(SHOP, "/catalog", html("Catalog", '<a id="contacts" href="/contacts">Contacts</a>', tracker=tracker))
    contacts = sites.add(SHOP, "/contacts", html("Contacts", FORM, tracker=tracker))
    started = datetime.now(UTC)

    visit(page, landing)
    snap(page, screenshot, "1-landing")
    page.goto(sites.url(ADS, "/banner"))
    follow(page, "#ad")
    snap(page, screenshot, "2-catalog")
    follow(page, "#contacts")  # internal: the last touch stays the Yandex ad
    snap(page, screenshot, "3-contacts")

    tracked = fields(page)
    first_touch = tracked["first_touch"]
    at = datetime.fromisoformat(first_touch.pop("at"))
    assert started - timedelta(seconds=1) <= at <= datetime.now(UTC)
    assert first_touch == {**SPRING_TOUCH, "landing_page": landing}  # a direct landing: no referrer
    assert {key: value for key, value in tracked.items() if key != "first_touch"} == {
        "utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "autumn",
        "referrer": sites.url(ADS, "/"),  # Chromium sends only the origin to another site
        "page_url": contacts,
        "gclid": "GCLID-1", "yclid": "777",
        "ym_client_id": "1700000000123456789", "ga_client_id": "123456789.1700000000", "roistat_visit": "4242",
    }

    posted = submit(page, sites)
    snap(page, screenshot, "4-posted")
    assert own_fields(posted) == {"name": "Ivan", "phone": "+79123456789"}
    assert {key: value for key, value in posted.items() if key not in ("name", "phone")} == flat(fields_at(tracked, at))


def fields_at(tracked: dict, at: datetime) -> dict:
    """`tracked` with first_touch.at put back as the script formats it."""
    return {**tracked, "first_touch": {**tracked["first_touch"], "at": at.isoformat(timespec="milliseconds")
                                       .replace("+00:00", "Z")}}


def test_the_state_is_a_first_party_cookie_on_the_sites_domain_and_in_local_storage(sites, context, page, screenshot):
    sites.add(SHOP, "/blank", html("Blank", tracker=None))
    sites.add(SHOP, "/landing", html("Sofas", tracker=tracker_url(sites)))
    page.goto(sites.url(SHOP, "/blank"))
    globals_before = set(page.evaluate("Object.keys(window)"))
    visit(page, sites.url(SHOP, "/landing") + f"?{SPRING}&gclid=GCLID-1")
    assert set(page.evaluate("Object.keys(window)")) - globals_before == {"amocrmTracker"}
    snap(page, screenshot)

    cookie = tracker_cookie(context)
    assert cookie is not None
    assert cookie["domain"] == ".shop.test"  # shared by www.shop.test and shop.test, not by crm.test
    assert (cookie["path"], cookie["sameSite"], cookie["secure"], cookie["httpOnly"]) == ("/", "Lax", False, False)
    in_90_days = datetime.now(UTC).timestamp() + 90 * 86400
    assert in_90_days - 60 < cookie["expires"] < in_90_days + 60
    assert len(cookie["name"]) + len(cookie["value"]) < 1000
    assert json.loads(local_state(page)) == json.loads(unquote(cookie["value"]))
    assert [c for c in context.cookies() if c["domain"].endswith("crm.test")] == []

    # The bare domain reads the same state.
    sites.add("shop.test", "/", html("Shop", tracker=tracker_url(sites)))
    visit(page, sites.url("shop.test", "/"))
    assert fields(page)["first_touch"]["utm_campaign"] == "spring"


# Counts the page's writes to document.cookie and localStorage (installed before any script of the page).
COUNT_WRITES = """(() => {
  const cookie = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
  window.cookieWrites = [];
  Object.defineProperty(document, 'cookie', {configurable: true, get: () => cookie.get.call(document),
    set: value => { window.cookieWrites.push(value.split('=')[0]); cookie.set.call(document, value); }});
  const setItem = Storage.prototype.setItem;
  window.storageWrites = 0;
  Storage.prototype.setItem = function () { window.storageWrites++; return setItem.apply(this, arguments); };
})()"""


def test_the_state_is_written_once_on_a_new_touch_and_not_again_on_later_pages(sites, context, page, screenshot):
    """Each cookie or localStorage access can be a synchronous round trip to the browser's storage process."""
    context.add_init_script(COUNT_WRITES)
    tracker = tracker_url(sites)
    sites.add(SHOP, "/landing", html("Sofas", tracker=tracker))
    sofa = sites.add(SHOP, "/sofa", html("A sofa", tracker=tracker))
    contacts = sites.add(SHOP, "/contacts", html("Contacts", FORM, tracker=tracker))

    def writes():
        return page.evaluate("[window.cookieWrites, window.storageWrites]")

    visit(page, sites.url(SHOP, "/landing") + f"?{SPRING}")
    # The probe for the cookie's domain (set and deleted), then the state, once in each store.
    assert writes() == [[f"{COOKIE}_probe", f"{COOKIE}_probe", COOKIE], 1]
    visit(page, sofa)
    assert writes() == [[], 0]
    visit(page, contacts)  # filling the form reads the state, writes nothing
    assert page.locator("form [data-amocrm-tracker]").count() > 0
    assert writes() == [[], 0]
    visit(page, sites.url(SHOP, "/sofa") + "?utm_source=newsletter")
    assert writes() == [[COOKIE], 1]
    snap(page, screenshot)


def test_a_referral_is_a_new_last_touch_and_a_direct_or_internal_visit_is_not(sites, page, screenshot):
    tracker = tracker_url(sites)
    sites.add(SHOP, "/landing", html("Sofas", tracker=tracker))
    sites.add(SEARCH, "/results", html("Results", '<a id="hit" href="{}">Sofas</a>'.format(
        sites.url(SHOP, "/sofa")), tracker=None))
    sites.add(SHOP, "/sofa", html("A sofa", '<a id="home" href="/landing">Home</a>', tracker=tracker))

    visit(page, sites.url(SHOP, "/landing") + f"?{SPRING}")
    page.goto(sites.url(SEARCH, "/results"))
    follow(page, "#hit")
    after_search = fields(page)
    assert after_search["referrer"] == sites.url(SEARCH, "/")
    assert not {"utm_source", "utm_medium", "utm_campaign"} & after_search.keys()  # organic: no UTMs
    assert after_search["first_touch"]["utm_campaign"] == "spring"

    follow(page, "#home")  # internal link
    visit(page, sites.url(SHOP, "/sofa"))  # typed in: no referrer, no parameters
    snap(page, screenshot)
    now = fields(page)
    assert now == {**after_search, "page_url": sites.url(SHOP, "/sofa")}


def test_forms_get_hidden_fields_added_later_forms_too_and_a_forms_own_values_win(sites, page, screenshot):
    tracker = tracker_url(sites)
    body = """
<form id="own" data-amocrm action="/lead" method="post">
  <input type="hidden" name="utm_source" value="partner-site">
  <input type="hidden" name="utm_campaign" value="">
  <input name="name" value="Ivan"> <input name="phone" value="+79123456789"> <button>Send</button>
</form>
<form id="plain" action="/lead" method="post"><input name="name" value="Not ours"><button>Send</button></form>
<div id="popup"></div>
<script>
  setTimeout(function () {
    document.getElementById("popup").innerHTML = '<form id="late" data-amocrm action="/lead" method="post">' +
      '<input name="name" value="Ivan"><input name="phone" value="+79123456789"><button>Send</button></form>';
  }, 300);
</script>"""
    # The line pasted twice must not add anything twice.
    page_url = sites.add(SHOP, "/offer", html("Offer", body, tracker=tracker,
                                               head=f'<script src="{tracker}" async></script>'))
    visit(page, page_url + f"?{SPRING}&fbclid=FB-1")

    page.wait_for_selector("#late input[name=utm_source]", state="attached")  # filled without a submit
    late_inputs = page.eval_on_selector_all("#late input[type=hidden]", "els => els.map(e => [e.name, e.value])")
    tracked = flat(fields(page))
    assert dict(late_inputs) == tracked
    assert page.locator("#plain input[type=hidden]").count() == 0
    snap(page, screenshot)

    posted = submit(page, sites, "#own")
    assert posted == {**tracked, "utm_source": "partner-site", "name": "Ivan", "phone": "+79123456789"}
    assert posted["utm_campaign"] == "spring"  # the form's empty field is filled
    assert posted["first_touch[utm_source]"] == "google"

    page.go_back()
    page.wait_for_selector("#late input[name=utm_source]", state="attached")
    posted = submit(page, sites, "#late")
    assert posted == {**tracked, "name": "Ivan", "phone": "+79123456789"}
    page.go_back()
    assert submit(page, sites, "#plain") == {"name": "Not ours"}


def test_without_consent_nothing_is_stored_and_nothing_is_added(sites, context, page, screenshot):
    consent = "<script>window.amocrmTrackerConsent = false;</script>"
    counters = '<script>document.cookie = "_ym_uid=1700000000123456789; path=/";</script>'
    url = sites.add(SHOP, "/contacts", html("Contacts", FORM, tracker=tracker_url(sites), head=consent + counters))

    visit(page, url + f"?{SPRING}&gclid=GCLID-1")
    snap(page, screenshot)
    assert tracker_cookie(context) is None
    assert local_state(page) is None
    assert fields(page) == {}
    assert page.locator("[data-amocrm-tracker]").count() == 0
    assert submit(page, sites) == {"name": "Ivan", "phone": "+79123456789"}
    assert tracker_cookie(context) is None


def test_consent_withdrawn_after_loading_removes_the_stored_state(sites, context, page, screenshot):
    tracker = tracker_url(sites)
    sites.add(SHOP, "/landing", html("Sofas", tracker=tracker))
    contacts = sites.add(SHOP, "/contacts", html("Contacts", FORM, tracker=tracker))
    # The tracker included without async runs before a consent banner's script further down the page.
    late_flag = sites.add(SHOP, "/banner", html(
        "Banner", "<script>window.amocrmTrackerConsent = false;</script>", tracker=None,
        head=f'<script src="{tracker}"></script>'))
    visit(page, sites.url(SHOP, "/landing") + f"?{SPRING}")
    assert tracker_cookie(context) is not None

    visit(page, contacts)
    assert page.locator("form [data-amocrm-tracker]").count() > 0
    page.evaluate("window.amocrmTrackerConsent = false")  # the visitor declines on this page
    snap(page, screenshot)
    assert submit(page, sites) == {"name": "Ivan", "phone": "+79123456789"}
    assert tracker_cookie(context) is None
    assert local_state(page) is None

    # Stored again once allowed, and a flag set by a later script on the page is seen before anything is stored.
    visit(page, sites.url(SHOP, "/landing") + f"?{SPRING}")
    assert tracker_cookie(context) is not None
    visit(page, late_flag)
    assert tracker_cookie(context) is None
    assert local_state(page) is None


@pytest.mark.parametrize("kept", ["cookie", "localStorage"])
def test_either_store_alone_restores_the_other(sites, browser, kept, screenshot):
    tracker = tracker_url(sites)
    sites.add(SHOP, "/landing", html("Sofas", tracker=tracker))
    sites.add(SHOP, "/blank", html("Blank", tracker=None))
    sofa = sites.add(SHOP, "/sofa", html("A sofa", tracker=tracker))

    first = browser.new_context()
    page = first.new_page()
    visit(page, sites.url(SHOP, "/landing") + f"?{SPRING}&gclid=GCLID-1")
    cookie, stored, before = tracker_cookie(first), local_state(page), fields(page)
    first.close()

    second = browser.new_context()
    page = second.new_page()
    if kept == "cookie":
        second.add_cookies([{key: cookie[key] for key in ("name", "value", "domain", "path", "expires", "sameSite")}])
    else:
        page.goto(sites.url(SHOP, "/blank"))
        page.evaluate("([key, value]) => localStorage.setItem(key, value)", [COOKIE, stored])
        assert tracker_cookie(second) is None
    visit(page, sofa)  # typed in: nothing new
    snap(page, screenshot)
    assert fields(page) == {**before, "page_url": sofa}
    assert json.loads(local_state(page)) == json.loads(stored)
    assert json.loads(unquote(tracker_cookie(second)["value"])) == json.loads(stored)
    second.close()


def test_when_cookie_and_local_storage_differ_the_oldest_first_and_the_newest_last_touch_win(sites, context, page,
                                                                                             screenshot):
    now = int(datetime.now(UTC).timestamp() * 1000)

    def touch(campaign, days_ago):
        return ["google", "cpc", campaign, "", "", "", f"https://www.shop.test/{campaign}", now - days_ago * DAY_MS]

    in_cookie = {"f": touch("twenty", 20), "l": touch("ten", 10), "c": {"gclid": ["G-OLD", now - 5 * DAY_MS]}}
    in_storage = {"f": touch("thirty", 30), "l": touch("two", 2), "c": {"gclid": ["G-NEW", now - DAY_MS]}}
    sites.add(SHOP, "/blank", html("Blank", tracker=None))
    sofa = sites.add(SHOP, "/sofa", html("A sofa", tracker=tracker_url(sites)))
    context.add_cookies([{"name": COOKIE, "value": quote(json.dumps(in_cookie)), "domain": ".shop.test", "path": "/"}])
    page.goto(sites.url(SHOP, "/blank"))
    page.evaluate("([key, value]) => localStorage.setItem(key, value)", [COOKIE, json.dumps(in_storage)])

    visit(page, sofa)
    snap(page, screenshot)
    tracked = fields(page)
    assert (tracked["first_touch"]["utm_campaign"], tracked["utm_campaign"], tracked["gclid"]) == (
        "thirty", "two", "G-NEW")
    assert json.loads(unquote(tracker_cookie(context)["value"])) == json.loads(local_state(page))


def test_touches_and_click_ids_expire_after_90_days(sites, page, screenshot):
    now = int(datetime.now(UTC).timestamp() * 1000)
    old = ["google", "cpc", "old", "", "", "", "https://www.shop.test/old", now - 100 * DAY_MS]
    mid = ["yandex", "cpc", "mid", "", "", "", "https://www.shop.test/mid", now - 10 * DAY_MS]
    state = {"f": old, "l": mid, "c": {"gclid": ["OLD-CLICK", now - 91 * DAY_MS], "yclid": ["Y-1", now - DAY_MS]}}
    sites.add(SHOP, "/blank", html("Blank", tracker=None))
    sofa = sites.add(SHOP, "/sofa", html("A sofa", tracker=tracker_url(sites)))
    page.goto(sites.url(SHOP, "/blank"))
    page.evaluate("([key, value]) => localStorage.setItem(key, value)", [COOKIE, json.dumps(state)])

    visit(page, sofa)
    snap(page, screenshot)
    tracked = fields(page)
    # The 100-day-old first touch is gone: the 10-day-old one is now the first and the last.
    assert tracked["first_touch"] == {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "mid",
                                      "landing_page": "https://www.shop.test/mid",
                                      "at": datetime.fromtimestamp((now - 10 * DAY_MS) / 1000, UTC)
                                      .isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    assert tracked["utm_campaign"] == "mid"
    assert "gclid" not in tracked
    assert tracked["yclid"] == "Y-1"


def test_long_values_are_cut_to_keep_the_cookie_small(sites, context, page, screenshot):
    sofa = sites.add(SHOP, "/sofa", html("A sofa", tracker=tracker_url(sites)))
    campaign = "распродажа-" * 300
    visit(page, sofa + f"?utm_source=google&utm_campaign={campaign}&utm_content={'x' * 3000}&gclid={'g' * 900}")
    ads = sites.url(ADS, "/" + "a" * 1500)
    sites.add(ADS, "/" + "a" * 1500, html("An ad", f'<a id="ad" href="{sofa}?utm_campaign={campaign}2">Go</a>',
                                          tracker=None))
    page.goto(ads)
    follow(page, "#ad")
    snap(page, screenshot)

    cookie = tracker_cookie(context)
    assert len(cookie["value"]) <= 2000  # with the name and attributes well under a browser's 4 KB
    assert json.loads(local_state(page)) == json.loads(unquote(cookie["value"]))
    tracked = fields(page)
    assert tracked["first_touch"]["utm_campaign"].startswith("распродажа-распродажа-")
    assert campaign.startswith(tracked["first_touch"]["utm_campaign"])
    assert tracked["utm_campaign"].startswith("распродажа-") and len(tracked["utm_campaign"]) <= 255
    assert tracked["gclid"].startswith("ggg") and len(tracked["gclid"]) <= 255


def test_on_https_the_cookie_is_secure(browser, screenshot):
    with Sites(tls=True) as sites:
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        url = sites.add(SHOP, "/sofa", html("A sofa", tracker=tracker_url(sites)))
        visit(page, url + f"?{SPRING}")
        snap(page, screenshot)
        cookie = tracker_cookie(context)
        assert (cookie["domain"], cookie["secure"], cookie["sameSite"]) == (".shop.test", True, "Lax")
        context.close()
