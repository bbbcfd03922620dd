"""The admin's home page in Chromium: an operator logs in, sees the account and its problems in the browser's
language, switches ru ↔ en in the header; screenshots of both languages under var/screenshots/."""

from decimal import Decimal

import pytest
from django.utils import timezone

from leads.models import Lead, LeadSource
from sales.models import Sale
from tests.factories import make_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop():
    account = make_account(name="Магазин цветов")
    source = LeadSource.objects.create(account=account, name="Форма на главной")
    for status in (Lead.Status.SENT, Lead.Status.SENT, Lead.Status.PENDING, Lead.Status.FAILED):
        Lead.objects.create(source=source, account=account, phone="+79123456789", status=status)
    Sale.objects.create(account=account, amocrm_deal_id=1, amount=Decimal("45000"), currency="RUB",
                        won_at=timezone.now())
    return account


def log_in(page, live_server):
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("form#login-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def switch_language(page, code: str):
    """The switcher sits in the user menu at the foot of the sidebar (unfold's SHOW_LANGUAGES)."""
    page.click("text=admin@example.com")
    with page.expect_navigation():
        page.click(f'form[action="/i18n/setlang/"]:has(input[name=language][value={code}]) button')


@pytest.mark.parametrize("locale", ["ru-RU"])
def test_the_dashboard_shows_the_account_in_russian_and_switches_to_english(
        live_server, admin_user, shop, page, screenshot):
    log_in(page, live_server)

    account = page.locator(f'.dashboard-account[data-account="{shop.pk}"]')
    assert account.locator("a", has_text="Магазин цветов").count() == 1
    assert "Подключён" in account.text_content()  # shown in capitals by CSS
    assert "45\xa0000,00\xa0₽" in account.inner_text()
    assert page.locator("#dashboard-problems h2").inner_text() == "Требует внимания"
    assert "1 заявка не дошла до amoCRM" in page.locator("#dashboard-problems").inner_text()
    assert page.locator("html").get_attribute("lang") == "ru"
    screenshot(page, "ru")

    switch_language(page, "en")

    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#dashboard-problems h2").inner_text() == "Needs your attention"
    assert "Leads today" in account.inner_text()
    assert "1 lead failed to reach amoCRM" in page.locator("#dashboard-problems").inner_text()
    screenshot(page, "en")

    # The choice sticks (session and cookie) over the browser's Accept-Language, until switched back.
    page.goto(f"{live_server.url}/admin/")
    assert page.locator("html").get_attribute("lang") == "en"
    switch_language(page, "ru")
    assert page.locator("#dashboard-problems h2").inner_text() == "Требует внимания"


@pytest.mark.parametrize("locale", ["ru-RU"])
def test_a_problem_links_to_the_page_that_fixes_it(live_server, admin_user, shop, page):
    log_in(page, live_server)

    page.locator(".dashboard-problem", has_text="не дошла").click()

    page.wait_for_url("**/admin/leads/lead/**")
    assert "status__exact=failed" in page.url
    assert page.locator("#result_list tbody tr").count() == 1


@pytest.mark.parametrize("locale", ["en-US"])
def test_view_site_opens_the_landing_page(live_server, admin_user, page, screenshot):
    log_in(page, live_server)

    page.goto(f"{live_server.url}/")

    assert page.locator("h1").inner_text() == "amoCRM integration"
    assert page.locator('a[href="/admin/"]').count() == 1
    screenshot(page)
