"""Each alert rule through Telegram and the generic webhook (HTTP mocked): one message opened, reminded, resolved.

The same break / fix cases as test_rules.py (which goes through email); here every step must reach the
chat or the webhook once, in the channel's language, with the link to the admin page that fixes it.
"""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import services
from monitoring.models import AlertChannel, AlertRule, Incident

from .conftest import send_queued
from .test_channels import BOT_TOKEN, HOOK_URL, TELEGRAM_URL
from .test_rules import CASES

pytestmark = pytest.mark.account(name="Shop")

CHANNELS = {
    "telegram": (dict(kind=AlertChannel.Kind.TELEGRAM, language="ru", telegram_bot_token=BOT_TOKEN,
                      telegram_chat_id="-1001234567890"), TELEGRAM_URL),
    "webhook": (dict(kind=AlertChannel.Kind.WEBHOOK, language="en", webhook_url=HOOK_URL), HOOK_URL),
}
# The first line of each step's text, per channel language.
OPENED = {"telegram": "Проблема: ", "webhook": "Problem: "}
REMINDED = {"telegram": "По-прежнему не работает: ", "webhook": "Still broken: "}
RESOLVED = {"telegram": "Исправлено: ", "webhook": "Fixed: "}


@pytest.mark.parametrize("kind", list(CASES), ids=str)
@pytest.mark.parametrize("channel", list(CHANNELS))
def test_each_rule_reaches_the_chat_and_the_webhook_once_per_step(kind, channel, account, amocrm_mock, time_machine):
    fields, url = CHANNELS[channel]
    AlertChannel.objects.create(name=channel, **fields)
    amocrm_mock.post(url, json={"ok": True, "result": {"message_id": 1}})
    start = timezone.now().replace(microsecond=0)
    time_machine.move_to(start, tick=False)
    rule = AlertRule.objects.get(kind=kind)
    AlertRule.objects.exclude(pk=rule.pk).update(enabled=False)
    rule.enabled, rule.reminder_minutes = True, 10
    rule.save()
    break_it, fix_it = CASES[kind]

    break_it(account, start)
    for minutes in (0, 1, 5, 10):  # opened at 0, seen at 1 and 5, reminded at 10
        time_machine.move_to(start + timedelta(minutes=minutes), tick=False)
        services.alerts_evaluate()
        send_queued()
    time_machine.move_to(start + timedelta(minutes=12), tick=False)
    fix_it(account, timezone.now())
    services.alerts_evaluate()
    send_queued()

    incident = Incident.objects.get()
    bodies = [json.loads(call.request.body) for call in amocrm_mock.calls]
    texts = [body["text"] for body in bodies]
    assert [text.split(": ")[0] + ": " for text in texts] == [OPENED[channel], REMINDED[channel], RESOLVED[channel]]
    assert all(f"http://testserver{incident.admin_path}" in text for text in texts), texts
    if channel == "webhook":
        assert [body["status"] for body in bodies] == ["opened", "reminded", "resolved"]
        assert {body["url"] for body in bodies} == {f"http://testserver{incident.admin_path}"}
    else:
        assert {body["chat_id"] for body in bodies} == {"-1001234567890"}
