"""The monitoring admin: channels keep their secrets, the test message needs its permission, rules and incidents."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from amocrm.models import Account
from monitoring import services
from monitoring.models import AlertChannel, AlertRule, Incident

from .conftest import send_queued

pytestmark = [pytest.mark.django_db, pytest.mark.account(name="Shop")]

CHANNELS = reverse("admin:monitoring_alertchannel_changelist")
BOT_TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"
HOOK_URL = "https://hooks.slack.example/services/T000/B000/XXXXSECRETXXXX"


def staff_with(django_user_model, username: str, *perms: str):
    user = django_user_model.objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


@pytest.fixture
def telegram():
    return AlertChannel.objects.create(name="Duty chat", kind=AlertChannel.Kind.TELEGRAM,
                                       telegram_bot_token=BOT_TOKEN, telegram_chat_id="-100123")


@pytest.fixture
def hook():
    return AlertChannel.objects.create(name="Slack", kind=AlertChannel.Kind.WEBHOOK, webhook_url=HOOK_URL)


def test_channel_pages_never_show_the_bot_token_or_the_webhook_url(admin_client, telegram, hook):
    pages = [admin_client.get(CHANNELS)]
    for channel in (telegram, hook):
        pages.append(admin_client.get(reverse("admin:monitoring_alertchannel_change", args=[channel.pk])))
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert BOT_TOKEN not in html and "XXXXSECRETXXXX" not in html
    assert "…saw8" in pages[1].content.decode()


def test_saving_a_channel_with_empty_secret_inputs_keeps_the_stored_secret(admin_client, telegram):
    url = reverse("admin:monitoring_alertchannel_change", args=[telegram.pk])
    response = admin_client.post(url, {"name": "Duty chat", "kind": "telegram", "enabled": "on", "language": "en",
                                       "email_recipients": "", "telegram_bot_token": "", "telegram_chat_id": "-100999",
                                       "webhook_url": ""})
    assert response.status_code == 302, response.content
    telegram.refresh_from_db()
    assert telegram.telegram_bot_token == BOT_TOKEN and telegram.telegram_chat_id == "-100999"


def test_a_channel_missing_what_its_kind_needs_is_explained(admin_client):
    response = admin_client.post(reverse("admin:monitoring_alertchannel_add"), {
        "name": "Mail", "kind": "email", "enabled": "on", "language": "ru", "email_recipients": "not-an-address"})
    assert response.status_code == 200
    assert "is not an email address" in response.content.decode()
    response = admin_client.post(reverse("admin:monitoring_alertchannel_add"), {
        "name": "Hook", "kind": "webhook", "enabled": "on", "language": "ru", "webhook_url": "ftp://x"})
    assert "must start with https://" in response.content.decode()
    assert not AlertChannel.objects.exists()


def test_the_test_message_action_queues_a_send_for_users_with_its_permission(
        client, django_user_model, telegram, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr("monitoring.admin.publish", lambda task, *args: queued.append((task.name, args)))
    client.force_login(staff_with(django_user_model, "ops", "monitoring.view_alertchannel",
                                  "monitoring.test_alertchannel"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CHANNELS, {"action": "send_test", "_selected_action": [telegram.pk]}, follow=True)
    assert queued == [("monitoring.tasks.send_test_message", (telegram.pk,))]
    assert "Test message queued for 1 channel(s)" in response.content.decode()


def test_without_the_permission_the_test_message_action_is_neither_listed_nor_run(
        client, django_user_model, telegram, monkeypatch):
    queued = []
    monkeypatch.setattr("monitoring.admin.publish", lambda task, *args: queued.append(args))
    client.force_login(staff_with(django_user_model, "viewer", "monitoring.view_alertchannel",
                                  "monitoring.change_alertchannel"))
    assert "send_test" not in client.get(CHANNELS).content.decode()
    client.post(CHANNELS, {"action": "send_test", "_selected_action": [telegram.pk]})
    assert queued == []


def test_a_failing_channel_shows_its_last_error_in_the_list(admin_client, hook, amocrm_mock):
    amocrm_mock.post(HOOK_URL, status=404)
    services.channel_send_test(channel_id=hook.pk)
    html = admin_client.get(CHANNELS).content.decode()
    assert "failing" in html and "The webhook answered 404" in html


def test_every_rule_is_listed_with_its_threshold_editable_and_none_can_be_added_or_deleted(admin_client):
    url = reverse("admin:monitoring_alertrule_changelist")
    html = admin_client.get(url).content.decode()
    assert AlertRule.objects.count() == len(AlertRule.Kind.values)
    for rule in AlertRule.objects.all():
        assert f'name="form-{list(AlertRule.objects.all()).index(rule)}-threshold"' in html
    assert admin_client.get(reverse("admin:monitoring_alertrule_add")).status_code == 403
    rule = AlertRule.objects.get(kind=AlertRule.Kind.PENDING_LEAD_OLD)
    response = admin_client.post(reverse("admin:monitoring_alertrule_change", args=[rule.pk]), {
        "enabled": "on", "threshold": "45", "window_minutes": "60", "reminder_minutes": "120"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.threshold, rule.reminder_minutes) == (45, 120)


def test_incidents_are_listed_read_only_with_their_history(admin_client, account, email_channel):
    Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
    services.alerts_evaluate()
    send_queued()
    Account.objects.filter(pk=account.pk).update(state=Account.State.CONNECTED)
    services.alerts_evaluate()
    incident = Incident.objects.get()
    listing = admin_client.get(reverse("admin:monitoring_incident_changelist") + "?open=no").content.decode()
    assert "Shop" in listing and "resolved" in listing
    page = admin_client.get(reverse("admin:monitoring_incident_change", args=[incident.pk])).content.decode()
    assert "Opened" in page and "Resolved" in page and "Ops mail: Sent" in page
    assert admin_client.post(reverse("admin:monitoring_incident_delete", args=[incident.pk])).status_code == 403


def test_the_incident_page_labels_its_details_in_russian(admin_client, account):
    Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
    services.alerts_evaluate()
    incident = Incident.objects.get()
    page = admin_client.get(reverse("admin:monitoring_incident_change", args=[incident.pk]),
                            HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Подробности" in page and "Числа, которые приводятся в сообщениях." in page
    assert "The numbers the messages show." not in page


def test_the_rule_list_counts_open_incidents_without_a_query_per_rule(admin_client, account):
    Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
    services.alerts_evaluate()
    rule = Incident.objects.get().rule
    with CaptureQueriesContext(connection) as queries:
        html = admin_client.get(reverse("admin:monitoring_alertrule_changelist")).content.decode()
    assert f'?rule__id__exact={rule.pk}&amp;open=yes">1</a>' in html
    # Joined into the list's own query: no count of its own per rule.
    assert not [query for query in queries.captured_queries if 'FROM "monitoring_incident"' in query["sql"]]
