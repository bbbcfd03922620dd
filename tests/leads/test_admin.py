"""Lead and lead-source admin: badges, links, filters, read-only detail with sync log, every action, the source form."""

import html
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from amocrm.models import SyncLog
from leads.models import Lead, LeadSource
from tests.leads.conftest import CITY_FIELD, FIRST_STAGE, PIPELINE, TYPE_FIELD, USER, make_lead, queued_task_args

pytestmark = pytest.mark.django_db

LEADS = reverse("admin:leads_lead_changelist")
SOURCES = reverse("admin:leads_leadsource_changelist")


def run_action(client, action, *leads):
    response = client.post(LEADS, {"action": action, "_selected_action": [str(lead.pk) for lead in leads]})
    return response, [str(message) for message in get_messages(response.wsgi_request)]


# ---------------------------------------------------------------------------- leads


def test_the_lead_list_shows_badges_sources_utms_and_deal_links(staff, source):
    make_lead(source, name="Sent one", status=Lead.Status.SENT, amocrm_deal_id=5001, utm_source="google",
              utm_campaign="spring", sent_at=timezone.now())
    make_lead(source, name="Failed one", status=Lead.Status.FAILED, last_error="amoCRM rejected this lead")
    make_lead(source, name="Waiting one")
    page = staff.get(LEADS).content.decode()
    for text in ("Sent one", "Failed one", "Waiting one", ">Sent<", ">Failed<", ">Pending<", "google", "spring",
                 "Landing", 'href="http://sandbox.test/leads/detail/5001"'):
        assert text in page


@pytest.mark.parametrize(("query", "shown", "hidden"), [
    ({"status__exact": "failed"}, "Failed one", "Sent one"),
    ({"utm_source": "google"}, "Sent one", "Failed one"),
    ({"q": "+79161112233"}, "Failed one", "Sent one"),
    ({"q": "sent@example.com"}, "Sent one", "Failed one"),
])
def test_the_lead_list_filters_and_searches(staff, source, query, shown, hidden):
    make_lead(source, name="Sent one", email="sent@example.com", status=Lead.Status.SENT, utm_source="google")
    make_lead(source, name="Failed one", phone="+79161112233", status=Lead.Status.FAILED)
    page = staff.get(LEADS, query).content.decode()
    assert shown in page and hidden not in page


def test_the_lead_list_filters_by_source_and_date(staff, source, account):
    other = LeadSource.objects.create(account=account, name="Other form")
    make_lead(source, name="Old landing lead", created_at=timezone.now() - timedelta(days=40))
    make_lead(other, name="Fresh other lead", created_at=timezone.now())
    by_source = staff.get(LEADS, {"source__id__exact": other.pk}).content.decode()
    assert "Fresh other lead" in by_source and "Old landing lead" not in by_source
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    by_date = staff.get(LEADS, {"created_at__gte": str(today),
                                "created_at__lt": str(today + timedelta(days=1))}).content.decode()
    assert "Fresh other lead" in by_date and "Old landing lead" not in by_date


def test_a_lead_detail_is_read_only_and_shows_its_sync_log(staff, source, account):
    lead = make_lead(source, status=Lead.Status.SENT, amocrm_deal_id=5001, message="<b>hi</b>")
    log = SyncLog.objects.create(account=account, operation="leads.complex", status=SyncLog.Status.OK, method="POST",
                                 path="/api/v4/leads/complex", http_status=200, duration_ms=42)
    failed = SyncLog.objects.create(account=account, operation="contacts.search", status=SyncLog.Status.ERROR,
                                    http_status=503, error="amoCRM answered 503.")
    lead.sync_logs.add(log, failed)
    url = reverse("admin:leads_lead_change", args=[lead.pk])
    page = staff.get(url).content.decode()
    assert "leads.complex" in page and "contacts.search" in page and "amoCRM answered 503." in page
    assert reverse("admin:amocrm_synclog_change", args=[log.pk]) in page
    assert "42 ms" in page and 'href="http://sandbox.test/leads/detail/5001"' in page
    assert "&lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page  # visitor data is escaped
    assert 'name="_save"' not in page  # nothing to save
    assert staff.post(url, {"name": "changed"}).status_code == 403
    assert staff.get(reverse("admin:leads_lead_add")).status_code == 403


def test_retry_push_puts_failed_leads_back_and_queues_a_push(staff, source, account,
                                                             django_capture_on_commit_callbacks):
    failed = make_lead(source, status=Lead.Status.FAILED, attempts=15, last_error="Gave up",
                       write_attempted_at=timezone.now())
    sent = make_lead(source, status=Lead.Status.SENT, amocrm_deal_id=1)
    with django_capture_on_commit_callbacks(execute=True):
        response, notes = run_action(staff, "action_retry_push", failed, sent)
    assert response.status_code == 302
    assert notes == ["1 lead(s) queued to push again.", "1 lead(s) skipped: already sent or being sent."]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.next_attempt_at) == (Lead.Status.PENDING, 0, None)
    assert failed.write_attempted_at is not None  # the next push looks for an earlier deal first
    assert Lead.objects.get(pk=sent.pk).status == Lead.Status.SENT
    assert queued_task_args() == [[account.pk]]


def test_retry_push_releases_a_backing_off_lead_and_a_spam_lead(staff, source):
    waiting = make_lead(source, next_attempt_at=timezone.now() + timedelta(minutes=30), attempts=3)
    spam = make_lead(source, status=Lead.Status.SPAM)
    _, notes = run_action(staff, "action_retry_push", waiting, spam)
    assert notes == ["2 lead(s) queued to push again."]
    assert set(Lead.objects.values_list("status", "next_attempt_at")) == {(Lead.Status.PENDING, None)}


def test_mark_as_spam_stops_pending_and_failed_leads_but_not_sent_ones(staff, source):
    pending = make_lead(source)
    failed = make_lead(source, status=Lead.Status.FAILED)
    sent = make_lead(source, status=Lead.Status.SENT, amocrm_deal_id=1)
    response, notes = run_action(staff, "action_mark_spam", pending, failed, sent)
    assert response.status_code == 302
    assert notes == ["2 lead(s) marked as spam; they will not be pushed.",
                     "1 lead(s) skipped: already in amoCRM or being sent."]
    assert Lead.objects.get(pk=pending.pk).status == Lead.Status.SPAM
    assert Lead.objects.get(pk=failed.pk).status == Lead.Status.SPAM
    assert Lead.objects.get(pk=sent.pk).status == Lead.Status.SENT


def test_actions_need_the_change_permission(client, django_user_model, source):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_lead"))
    client.force_login(viewer)
    lead = make_lead(source, status=Lead.Status.FAILED)
    page = client.get(LEADS).content.decode()
    assert "action_retry_push" not in page
    client.post(LEADS, {"action": "action_retry_push", "_selected_action": [str(lead.pk)]})
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.FAILED


# ---------------------------------------------------------------------------- lead sources


def source_form(account, **changes):
    data = {"name": "Promo", "account": account.pk, "is_active": "on", "mode": "deal", "pipeline_id": "",
            "status_id": "", "responsible_user_id": "", "deal_name_template": "Заявка: {name}", "tags": "",
            "field_mapping": "", "allowed_origins": "", "success_url": "", "error_url": "", "form_id": "",
            "hook_preset": "auto", "hook_aliases": "{}"}
    data.update(changes)
    return data


def test_the_source_form_offers_pipelines_stages_and_users_by_name(staff, source):
    page = staff.get(reverse("admin:leads_leadsource_change", args=[source.pk])).content.decode()
    for text in (f'value="{PIPELINE}"', "Sales (main)", "Partners", f'value="{FIRST_STAGE}"', "New", "Talks",
                 '<optgroup label="Sales">', f'value="{USER}"', "Anna", "Boris", "Город"):
        assert text in page


@pytest.mark.usefixtures("account_with_metadata")
def test_a_source_saved_in_the_admin_stores_ids_chosen_by_name(staff, account):
    response = staff.post(reverse("admin:leads_leadsource_add"), source_form(
        account, pipeline_id=str(PIPELINE), status_id=str(FIRST_STAGE), responsible_user_id=str(USER),
        tags="site, promo , ", allowed_origins="https://Shop.Example/\nhttp://localhost:3000",
        field_mapping="city: Город\nkind → Тип клиента\nqty = 952", success_url="https://shop.example/ok"))
    assert response.status_code == 302, response.content.decode()
    created = LeadSource.objects.get(name="Promo")
    assert (created.pipeline_id, created.status_id, created.responsible_user_id) == (PIPELINE, FIRST_STAGE, USER)
    assert created.tags == ["site", "promo"]
    assert created.allowed_origins == ["https://shop.example", "http://localhost:3000"]
    assert created.field_mapping == {"city": CITY_FIELD, "kind": TYPE_FIELD, "qty": 952}
    assert created.public_key and not created.is_default


@pytest.mark.usefixtures("account_with_metadata")
@pytest.mark.parametrize(("changes", "message"), [
    ({"allowed_origins": "https://shop.example/path"}, "is not an origin"),
    ({"allowed_origins": "shop.example"}, "is not an origin"),
    ({"pipeline_id": str(PIPELINE), "status_id": "2002"}, "This stage is not in the chosen pipeline."),
    ({"field_mapping": "city: No such field"}, "is not a deal field of this account"),
    ({"field_mapping": "just words"}, "write “form field: amoCRM field”"),
])
def test_the_source_form_refuses_what_would_break_pushes(staff, account, changes, message):
    response = staff.post(reverse("admin:leads_leadsource_add"), source_form(account, **changes))
    assert response.status_code == 200
    assert message in html.unescape(response.content.decode())
    assert not LeadSource.objects.filter(name="Promo").exists()


def test_the_source_page_shows_a_copy_paste_embed_snippet_with_endpoint_key_and_honeypot(staff, source):
    page = html.unescape(staff.get(reverse("admin:leads_leadsource_change", args=[source.pk])).content.decode())
    assert 'action="http://testserver/api/leads/"' in page
    assert f'name="source" value="{source.public_key}"' in page
    assert 'name="website"' in page and "Honeypot" in page
    assert 'fetch("http://testserver/api/leads/"' in page and '"Idempotency-Key"' in page


def test_the_source_list_counts_leads(staff, source):
    make_lead(source)
    make_lead(source)
    page = staff.get(SOURCES).content.decode()
    assert "Landing" in page and source.public_key in page
    # The theme's cell: <td class="field-lead_count …" data-label="…">2</td>.
    assert re.search(r'<td class="field-lead_count\b[^>]*>2</td>', page)
