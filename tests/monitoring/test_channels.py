"""Sending through each channel, HTTP mocked at the boundary: Telegram, the generic webhook, email (locmem)."""

import io
import json
import logging
import re

import pytest
import requests
import responses
from django.core import mail

from amocrm.models import Account
from monitoring import services
from monitoring.models import AlertChannel, Incident, Notification

from .conftest import send_queued

pytestmark = pytest.mark.account(name="Shop")  # the account name the messages and pages show

BOT_TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"
TELEGRAM_URL = f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage"
HOOK_URL = "https://hooks.slack.example/services/T000/B000/XXXXSECRETXXXX"


@pytest.fixture
def telegram(db):
    return AlertChannel.objects.create(name="Duty chat", kind=AlertChannel.Kind.TELEGRAM, language="ru",
                                       telegram_bot_token=BOT_TOKEN, telegram_chat_id="-1001234567890")


@pytest.fixture
def hook(db):
    return AlertChannel.objects.create(name="Slack", kind=AlertChannel.Kind.WEBHOOK, language="en",
                                       webhook_url=HOOK_URL)


def _break(account):
    Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
    services.alerts_evaluate()


def test_telegram_gets_the_message_in_the_channels_language(account, telegram, amocrm_mock):
    amocrm_mock.post(TELEGRAM_URL, json={"ok": True, "result": {"message_id": 1}})
    _break(account)
    assert send_queued() == [None]
    body = json.loads(amocrm_mock.calls[0].request.body)
    assert body["chat_id"] == "-1001234567890"
    assert body["text"].startswith("Проблема: Аккаунт требует повторного подключения — Shop\n")
    assert "Что сделать: Откройте аккаунт в админке и нажмите «Подключить»" in body["text"]
    assert f"Где исправить: http://testserver/admin/amocrm/account/{account.pk}/change/" in body["text"]
    telegram.refresh_from_db()
    assert telegram.last_success_at is not None and telegram.last_error == ""


def test_the_generic_webhook_gets_a_json_post_with_text_and_link(account, hook, amocrm_mock):
    amocrm_mock.post(HOOK_URL, status=200)
    _break(account)
    send_queued()
    body = json.loads(amocrm_mock.calls[0].request.body)
    assert body["status"] == "opened"
    assert body["title"].startswith("Problem: Account needs re-authorization — Shop")
    assert body["url"] == f"http://testserver/admin/amocrm/account/{account.pk}/change/"
    assert "What to do: Open the account in the admin and click Connect" in body["text"]


def test_email_goes_to_every_recipient(account, email_channel):
    _break(account)
    send_queued()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.com", "boss@example.com"]


def test_a_failing_channel_is_visible_retried_with_backoff_and_does_not_stop_the_others(
        account, telegram, hook, email_channel, amocrm_mock, caplog):
    amocrm_mock.post(TELEGRAM_URL, status=401, json={"ok": False, "error_code": 401, "description": "Unauthorized"})
    amocrm_mock.post(HOOK_URL, body=requests.ConnectionError(f"Max retries exceeded with url: {HOOK_URL}"))
    caplog.set_level(logging.INFO)
    _break(account)
    delays = send_queued()

    assert len(mail.outbox) == 1, "email is sent although Telegram and the webhook fail"
    assert sorted(delay is not None for delay in delays) == [False, True, True]
    telegram.refresh_from_db()
    hook.refresh_from_db()
    assert telegram.failing and telegram.last_error == "Telegram rejected the bot token: copy it again from @BotFather."
    assert hook.failing and "could not be reached (ConnectionError)" in hook.last_error
    queued = Notification.objects.filter(state=Notification.State.QUEUED)
    assert queued.count() == 2 and all(n.next_attempt_at and n.attempts == 1 for n in queued)
    # Secrets never reach a stored error or a log line.
    everything = caplog.text + telegram.last_error + hook.last_error + "".join(queued.values_list("error", flat=True))
    assert BOT_TOKEN not in everything and "XXXXSECRETXXXX" not in everything


def test_a_notification_is_given_up_as_failed_after_its_attempts(account, hook, amocrm_mock, time_machine):
    amocrm_mock.post(HOOK_URL, status=500)
    time_machine.move_to("2026-01-05 10:00:00+00:00", tick=False)
    _break(account)
    for _ in range(services.MAX_ATTEMPTS + 2):
        send_queued()
        time_machine.shift(services.RETRY_CAP_SECONDS + 1)
    notification = Notification.objects.get()
    assert notification.state == Notification.State.FAILED and notification.attempts == services.MAX_ATTEMPTS
    assert len(amocrm_mock.calls) == services.MAX_ATTEMPTS
    assert notification.error == "The webhook answered 500 instead of accepting the message: check its URL."


def test_a_claimed_notification_is_sent_once_even_when_a_sweep_queues_it_again(account, hook, amocrm_mock):
    amocrm_mock.post(HOOK_URL, status=200)
    _break(account)
    pk = Notification.objects.get().pk
    assert services.notification_send(notification_id=pk) is None
    assert services.notification_send(notification_id=pk) is None
    assert len(amocrm_mock.calls) == 1


def test_lost_notifications_are_queued_again_by_the_sweep(account, hook, time_machine,
                                                           django_capture_on_commit_callbacks):
    time_machine.move_to("2026-01-05 10:00:00+00:00", tick=False)
    _break(account)
    assert services.notifications_sweep() == 0, "just queued: its task is on the way"
    time_machine.shift(300)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.notifications_sweep() == 1
    assert len(callbacks) == 1


def test_the_test_message_records_success_or_the_error_on_the_channel(telegram, amocrm_mock):
    amocrm_mock.post(TELEGRAM_URL, status=400, json={"ok": False, "description": "Bad Request: chat not found"})
    assert services.channel_send_test(channel_id=telegram.pk) == "failed"
    telegram.refresh_from_db()
    assert "does not know the chat id" in telegram.last_error
    amocrm_mock.replace(responses.POST, TELEGRAM_URL, json={"ok": True})
    assert services.channel_send_test(channel_id=telegram.pk) == "sent"
    telegram.refresh_from_db()
    assert not telegram.failing


def test_a_disabled_channel_gets_no_messages(account, hook, email_channel):
    hook.enabled = False
    hook.save()
    _break(account)
    assert list(Notification.objects.values_list("channel__kind", flat=True)) == ["email"]
    assert Incident.objects.count() == 1


def test_secrets_are_encrypted_at_rest(telegram, hook):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT telegram_bot_token, webhook_url FROM monitoring_alertchannel ORDER BY id")
        stored = cursor.fetchall()
    assert all(value == "" or value.startswith("fernet:") for row in stored for value in row)
    assert BOT_TOKEN not in str(stored) and HOOK_URL not in str(stored)


def test_one_incident_reads_in_each_channels_language(account, telegram, hook, amocrm_mock):
    amocrm_mock.post(TELEGRAM_URL, json={"ok": True})
    amocrm_mock.post(HOOK_URL, status=200)
    _break(account)
    Account.objects.filter(pk=account.pk).update(state=Account.State.CONNECTED)
    services.alerts_evaluate()
    send_queued()
    texts = {call.request.url: json.loads(call.request.body)["text"] for call in amocrm_mock.calls}
    assert len(amocrm_mock.calls) == 4
    resolved = [text for text in texts.values()]
    assert any(text.startswith("Исправлено: Аккаунт требует повторного подключения — Shop") for text in resolved)
    assert any(text.startswith("Fixed: Account needs re-authorization — Shop") for text in resolved)


def _po_entries(path) -> dict[str, list[str]]:
    """{msgid: [msgstr, ...]} of a .po file (continuation lines joined), the header left out; a message with a
    context is keyed as gettext's compiled catalogue keys it: "context\x04msgid"."""
    entries = {}
    for block in path.read_text().split("\n\n"):
        fields: dict[str, str] = {}
        current = None
        for line in block.splitlines():
            match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d\])?) (".*")$', line)
            if match:
                current = match.group(1)
                fields[current] = json.loads(match.group(2))
            elif line.startswith('"') and current:
                fields[current] += json.loads(line)
        if fields.get("msgid"):
            name = f"{fields['msgctxt']}\x04{fields['msgid']}" if "msgctxt" in fields else fields["msgid"]
            entries[name] = [value for key, value in fields.items() if key.startswith("msgstr")]
    return entries


def test_the_russian_catalogue_translates_every_message_and_is_compiled():
    import gettext
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "monitoring/locale/ru/LC_MESSAGES"
    entries = _po_entries(folder / "django.po")
    untranslated = [msgid for msgid, values in entries.items() if not all(values)]
    assert len(entries) > 100 and not untranslated, untranslated[:3]
    with open(folder / "django.mo", "rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)._catalog
    stale = [msgid for msgid, values in entries.items()
             if catalog.get(msgid, catalog.get((msgid, 0))) != values[0]]
    assert not stale, f"run compilemessages: {stale[:3]}"


def test_rotating_the_encryption_key_re_encrypts_the_channels_secrets(telegram, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command
    from django.db import connection

    def stored() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT telegram_bot_token FROM monitoring_alertchannel WHERE id = %s", [telegram.pk])
            return cursor.fetchone()[0]

    before = stored()
    settings.FIELD_ENCRYPTION_KEY = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEY]
    call_command("amocrm_rotate_encryption", stdout=io.StringIO())
    assert stored() != before
    settings.FIELD_ENCRYPTION_KEY = settings.FIELD_ENCRYPTION_KEY[:1]  # the old key removed
    telegram.refresh_from_db()
    assert telegram.telegram_bot_token == BOT_TOKEN
