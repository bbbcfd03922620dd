"""The main admin pages in the theme, in Russian, in Chromium: each opens, runs its scripts under the admin's
policy (nothing blocked) and is saved as a screenshot under var/screenshots/ for a person to look at."""

from decimal import Decimal

import pytest
from django.utils import timezone

from leads.models import Lead, LeadSource
from sales.models import Sale
from tests.browser.test_admin_dashboard import log_in
from tests.factories import make_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop():
    account = make_account(name="Магазин цветов")
    source = LeadSource.objects.create(account=account, name="Форма на главной")
    lead = Lead.objects.create(source=source, account=account, name="Анна", phone="+79123456789",
                               utm_source="yandex", utm_campaign="весна", status=Lead.Status.SENT)
    Sale.objects.create(account=account, amocrm_deal_id=1, lead=lead, amount=Decimal("45000"), currency="RUB",
                        won_at=timezone.now(), name="Букет")
    return account, source


@pytest.mark.parametrize("locale", ["ru-RU"])
def test_the_main_pages_open_in_russian_with_nothing_blocked(live_server, admin_user, shop, page, screenshot):
    account, source = shop
    blocked = []
    page.on("console", lambda message: "Content Security Policy" in message.text and blocked.append(message.text))
    log_in(page, live_server)

    pages = {
        "account": f"/admin/amocrm/account/{account.pk}/change/",
        "leads": "/admin/leads/lead/",
        "source": f"/admin/leads/leadsource/{source.pk}/change/",
        "sales": "/admin/sales/sale/",
        "report": "/admin/sales/sale/report/",
        "spend": "/admin/sales/adspend/",
        "lost-deals": "/admin/sales/dealloss/",
        "conversions": "/admin/conversions/conversionexport/",
        "incidents": "/admin/monitoring/incident/",
    }
    for name, path in pages.items():
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
        page.wait_for_function("!document.documentElement.hasAttribute('x-cloak')")  # Alpine.js ran
        assert page.locator("html").get_attribute("lang") == "ru"
        assert page.locator("#nav-sidebar-apps, nav").first.is_visible()
        screenshot(page, name)

    assert not blocked, blocked
    page.goto(live_server.url + "/admin/leads/lead/")
    assert page.get_by_text("Отправлена").first.is_visible()  # the lead's status in Russian
