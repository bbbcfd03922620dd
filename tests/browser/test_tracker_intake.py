"""The tracker and the admin's embed snippet on a customer's site in Chromium, posting to the REAL intake (a live
Django server): the stored lead carries the first touch, the last touch and the click ids."""

from datetime import UTC, datetime, timedelta

import pytest
from django.template.loader import render_to_string

from amocrm_sandbox.sites import TRACKER_PATH
from leads.intake.api import HONEYPOT_FIELD
from leads.models import Lead, LeadSource
from leads.sources import lead_source_cache_clear
from tests.browser.test_tracker import ADS, SHOP, SPRING, follow, html, snap, visit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop_source(account, sites):
    lead_source_cache_clear()
    yield LeadSource.objects.create(account=account, name="Shop", allowed_origins=[sites.url(SHOP, "")])
    lead_source_cache_clear()


def test_land_with_utms_and_gclid_browse_two_pages_and_the_snippet_stores_first_and_last_touch(
        live_server, sites, shop_source, page, screenshot):
    tracker = f"{live_server.url}{TRACKER_PATH}"
    snippet = render_to_string("leads/embed_snippet.html", {
        "source": shop_source, "endpoint": f"{live_server.url}/api/leads/", "honeypot": HONEYPOT_FIELD,
        "tracker_url": tracker})
    landing = sites.add(SHOP, "/landing", html("Sofas", tracker=tracker)) + f"?{SPRING}&gclid=GCLID-1"
    catalog = sites.url(SHOP, "/catalog") + "?utm_source=yandex&utm_medium=cpc&utm_campaign=autumn&yclid=777"
    sites.add(ADS, "/banner", html("An ad", f'<a id="ad" href="{catalog}">Sofas -20%</a>', tracker=None))
    sites.add(SHOP, "/catalog", html("Catalog", '<a id="contacts" href="/contacts">Contacts</a>', tracker=tracker))
    contacts = sites.add(SHOP, "/contacts", html("Contacts", snippet, tracker=None))  # the snippet has its line
    started = datetime.now(UTC)

    visit(page, landing)
    page.goto(sites.url(ADS, "/banner"))
    follow(page, "#ad")  # the second page: a Yandex ad, the last touch
    follow(page, "#contacts")  # the third: internal, the last touch stays the Yandex ad
    page.fill("#amocrm-lead-form input[name=name]", "Иван")
    page.fill("#amocrm-lead-form input[name=phone]", "8 (912) 345-67-89")
    snap(page, screenshot, "form")
    with page.expect_event("dialog") as opened:
        page.click("#amocrm-lead-form button")
    dialog = opened.value
    message = dialog.message
    dialog.accept()
    assert message == "Thank you! We will be in touch soon."

    lead = Lead.objects.get()
    assert (lead.source, lead.name, lead.phone) == (shop_source, "Иван", "+79123456789")
    assert (lead.utm_source, lead.utm_medium, lead.utm_campaign) == ("yandex", "cpc", "autumn")
    assert (lead.first_utm_source, lead.first_utm_medium, lead.first_utm_campaign, lead.first_utm_term,
            lead.first_utm_content) == ("google", "cpc", "spring", "sofa", "ad1")
    assert (lead.first_landing_page, lead.first_referrer) == (landing, "")
    assert started - timedelta(seconds=1) <= lead.first_touch_at <= datetime.now(UTC)
    assert (lead.gclid, lead.yclid) == ("GCLID-1", "777")
    assert (lead.page_url, lead.referrer) == (contacts, sites.url(ADS, "/"))
