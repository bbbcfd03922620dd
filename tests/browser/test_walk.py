"""An operator's walk through every admin page, the landing page and the OAuth result page, in Russian and
English: each page answers (no 500), and a screenshot var/screenshots/walk-<lang>-<page>.png is left to look at."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from amocrm.models import AmoUser, CustomField, Pipeline, Stage, SyncLog, WebhookEvent
from conversions.models import ConversionExport
from leads.models import Lead, LeadSource
from monitoring.models import AlertChannel, AlertRule, Incident
from sales.models import AdSpend, DealLoss, Sale
from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_admin_dashboard import log_in
from tests.factories import make_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop():
    """One of everything an operator can list, with Russian names."""
    account = make_account(name="Магазин цветов")
    pipeline = Pipeline.objects.create(account=account, amocrm_id=777, name="Продажи", is_main=True)
    Stage.objects.create(pipeline=pipeline, amocrm_id=142, name="Успешно", sort=10000)
    AmoUser.objects.create(account=account, amocrm_id=4040, name="Ирина")
    CustomField.objects.create(account=account, entity_type="contacts", amocrm_id=900, name="Должность", type="text")
    SyncLog.objects.create(account=account, operation="leads.complex", status=SyncLog.Status.OK)
    WebhookEvent.objects.create(account=account, body=b"x", body_sha256="0" * 64)
    source = LeadSource.objects.create(account=account, name="Форма на главной")
    lead = Lead.objects.create(source=source, account=account, name="Анна", phone="+79123456789",
                               utm_source="yandex", utm_campaign="весна", status=Lead.Status.SENT,
                               amocrm_deal_id=5001)
    sale = Sale.objects.create(account=account, amocrm_deal_id=5001, lead=lead, amount=Decimal("45000"),
                               currency="RUB", won_at=timezone.now(), name="Букет", pipeline_id=777,
                               stage_id=142, responsible_user_id=4040)
    DealLoss.objects.create(account=account, amocrm_deal_id=5002, lead=lead, loss_reason="Дорого", pipeline_id=777,
                            lost_at=timezone.now())
    AdSpend.objects.create(day=date.today(), utm_source="yandex", utm_medium="cpc", utm_campaign="весна",
                           cost=Decimal("1000"), currency="RUB")
    ConversionExport.objects.create(sale=sale, lead=lead, platform=ConversionExport.Platform.choices[0][0],
                                    id_type=ConversionExport.IdType.choices[0][0], click_id="abc", goal="sale",
                                    value=Decimal("45000"), currency="RUB")
    AlertChannel.objects.create(name="Дежурный чат", kind=AlertChannel.Kind.TELEGRAM, telegram_bot_token="1:x",
                                telegram_chat_id="-100123")
    rule, _ = AlertRule.objects.get_or_create(kind=AlertRule.Kind.WEBHOOK_SILENT)  # flushed after a test
    Incident.objects.create(rule=rule, subject_key=f"account:{account.pk}", subject=account.name, account=account,
                            details={"hours": 6}, admin_path=f"/admin/amocrm/account/{account.pk}/change/")
    Group.objects.get_or_create(name="Операторы")
    return account


def walk_pages() -> dict:
    """Page name → path: each list, the change page of its first row, the extra views."""
    from django.contrib import admin

    pages = {"dashboard": "/admin/"}
    for model in admin.site._registry:
        meta = model._meta
        if meta.app_label == "axes":
            continue
        base = f"/admin/{meta.app_label}/{meta.model_name}/"
        pages[f"{meta.model_name}-list"] = base
        first = model.objects.order_by("pk").first()
        if first is not None:
            pages[f"{meta.model_name}-change"] = f"{base}{first.pk}/change/"
    pages.update({
        "source-add": "/admin/leads/leadsource/add/",
        "report": "/admin/sales/sale/report/",
        "spend-upload": "/admin/sales/adspend/upload/",
        "landing": "/",
        "oauth-widget": "/amocrm/oauth/callback/?from_widget=1",
        "oauth-bad-state": "/amocrm/oauth/callback/?state=nonsense&code=x",
    })
    return pages


@pytest.mark.parametrize("locale", ["ru-RU", "en-US"])
def test_every_page_opens(live_server, admin_user, shop, page, locale):
    log_in(page, live_server)
    failed = {}
    for name, path in walk_pages().items():
        response = page.goto(live_server.url + path)
        if response.status >= 500 or (response.status != 200 and not name.startswith("oauth")):
            failed[name] = (path, response.status)
        stem = SCREENSHOTS / f"walk-{locale[:2]}-{name}"
        page.screenshot(path=f"{stem}.png", full_page=True)
        stem.with_suffix(".txt").write_text(page.locator("body").inner_text())
    assert not failed, failed


@pytest.mark.parametrize("locale", ["ru-RU"])
def test_the_spend_upload_page_has_its_title_and_a_button(live_server, admin_user, page):
    log_in(page, live_server)
    page.goto(live_server.url + "/admin/sales/adspend/upload/")

    assert page.locator("#content-main h1").inner_text() == "Загрузка рекламных расходов"
    button = page.locator("form.spend-upload-form input[type=submit]")
    assert button.get_attribute("value") == "Импортировать"
    # A button, not a bare word: the theme resets form controls to transparent.
    assert button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(124, 58, 237)"


@pytest.mark.parametrize("locale", ["ru-RU"])
def test_an_operator_uploads_spend_in_russian(live_server, admin_user, page, tmp_path):
    log_in(page, live_server)
    page.goto(live_server.url + "/admin/sales/adspend/upload/")
    bad = tmp_path / "bad.csv"
    bad.write_text("date,cost\nвчера,1\n")
    page.set_input_files("input[type=file]", str(bad))
    page.click("form.spend-upload-form input[type=submit]")
    page.screenshot(path=str(SCREENSHOTS / "walk-ru-spend-upload-errors.png"), full_page=True)
    assert "Ничего не импортировано" in page.locator("#content-main").inner_text()

    good = tmp_path / "spend.csv"
    good.write_text("date;utm_source;utm_medium;utm_campaign;cost;currency\n2026-03-01;yandex;cpc;весна;1 500,50;RUB\n")
    page.set_input_files("input[type=file]", str(good))
    page.click("form.spend-upload-form input[type=submit]")
    page.wait_for_url("**/admin/sales/adspend/")
    page.screenshot(path=str(SCREENSHOTS / "walk-ru-spend-uploaded.png"), full_page=True)
    assert "Импортировано" in page.locator("body").inner_text()
    assert AdSpend.objects.get().cost == Decimal("1500.50")
