"""The lead page's "Attribution" fieldset shows the first touch and the click and client ids."""

import html
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from tests.leads.conftest import make_lead

pytestmark = pytest.mark.django_db


def test_the_lead_page_shows_first_touch_click_ids_and_client_ids_under_attribution(staff, source):
    lead = make_lead(source, utm_campaign="autumn", first_utm_campaign="spring-sale", first_referrer="https://ads.test/",
                     first_landing_page="https://shop.test/?gclid=G-1", gclid="G-CLICK-1", yclid="Y-777",
                     ym_client_id="1700000000123456789", ga_client_id="123.456", roistat_visit="4242",
                     first_touch_at=datetime(2026, 5, 1, 10, tzinfo=UTC))
    page = html.unescape(staff.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode())
    attribution = page[page.index("Attribution"):page.index("Request")]
    for label, value in (("first touch utm_campaign", "spring-sale"), ("first touch referrer", "https://ads.test/"),
                         ("first touch landing page", "https://shop.test/?gclid=G-1"),
                         ("Google click id (gclid)", "G-CLICK-1"), ("Yandex click id (yclid)", "Y-777"),
                         ("Yandex Metrika ClientID", "1700000000123456789"), ("Roistat visit", "4242"),
                         ("first touch at", "2026")):
        assert label in attribution.lower() or label in attribution, label
        assert value in attribution, value


def test_the_embed_snippet_includes_the_tracker_in_one_script_line_and_marks_its_form(staff, source):
    page = html.unescape(staff.get(reverse("admin:leads_leadsource_change", args=[source.pk])).content.decode())
    snippet = page[page.index("<textarea readonly"):]
    assert '<script src="http://testserver/static/amocrm/tracker.js" async></script>' in snippet
    assert '<form id="amocrm-lead-form" data-amocrm action="http://testserver/api/leads/"' in snippet
    assert "window.amocrmTracker.fields()" in snippet
