"""The sales report in Chromium, in Russian and English: charts, table, funnel and cohorts render; screenshots saved."""

import pytest
from django.conf import settings as django_settings

from tests.sales.test_report import journeys  # noqa: F401 — the fixture of visitor journeys (March 2026)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPORT = "/admin/sales/sale/report/?period=custom&date_from=2026-03-01&date_to=2026-03-31&group_by=utm_campaign"


@pytest.mark.parametrize("locale, texts", [
    ("ru-RU", ["Продажи по кампаниям", "Выручка, RUB", "Воронка: «Продажи»", "Дорого (1)", "Итого"]),
    ("en-US", ["Sales by campaign", "Revenue, RUB", "Funnel: pipeline “Продажи”", "Дорого (1)", "Total"]),
])
def test_the_report_renders_in_the_browser(live_server, admin_user, page, locale, texts, journeys,  # noqa: F811
                                           settings, screenshot):
    # The language: the browser's, once the locale middleware is in; here the site's default follows it.
    settings.LANGUAGE_CODE = locale[:2]
    settings.LOCALE_PATHS = [django_settings.BASE_DIR / "locale"]
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("#login-form [type=submit]")  # the theme's log-in button
    page.wait_for_url(f"{live_server.url}/admin/")

    page.goto(live_server.url + REPORT)

    body = page.locator("#content").inner_text()
    for text in texts:
        assert text in body, text
    assert page.locator("svg.sales-chart").count() == 7
    assert page.locator("svg.sales-chart rect.bar").first.bounding_box()["width"] > 100
    screenshot(page)
