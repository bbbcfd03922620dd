"""The account and webhook delivery admin actions report in Russian to a Russian-speaking operator.

The English texts are covered by tests/amocrm/test_admin.py; here the same actions run with Accept-Language: ru
and every message (and the failure prefix naming the action) must come from the catalogue.
"""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from amocrm.models import WebhookEvent
from tests.amocrm.test_oauth import mock_metadata
from tests.factories import API, TOKEN_URL, make_account

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:amocrm_account_changelist")


def run_action(client, action, *objects, url=CHANGELIST):
    response = client.post(url, {"action": action, "_selected_action": [o.pk for o in objects]},
                           HTTP_ACCEPT_LANGUAGE="ru")
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_test_connection_reports_in_russian(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.get(f"{API}/account", json={"id": 31000001, "name": "Shop"})
    assert run_action(staff_client, "action_test_connection", account) == [
        f"{account.name}: подключение работает (аккаунт amoCRM Shop, id 31000001)."]


def test_a_failed_action_is_named_in_russian(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.get(f"{API}/account", status=500, body="oops")
    [message] = run_action(staff_client, "action_test_connection", account)
    assert message.startswith(f"{account.name}: не удалось выполнить «проверить подключение».")
    assert "test connection" not in message


def test_refresh_token_reports_in_russian(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 86400, "access_token": "a2",
                                 "refresh_token": "r2"})
    [message] = run_action(staff_client, "action_refresh_token", account)
    assert message.startswith(f"{account.name}: токен обновлён, действует до ")


def test_refresh_token_on_a_long_lived_token_reports_in_russian(staff_client):
    account = make_account(long_lived=True)
    assert run_action(staff_client, "action_refresh_token", account) == [
        f"{account.name}: долгосрочные токены не обновляются."]


def test_sync_metadata_reports_in_russian(staff_client, amocrm_mock):
    account = make_account()
    mock_metadata(amocrm_mock)
    assert run_action(staff_client, "action_sync_metadata", account) == [
        f"{account.name}: метаданные обновлены: воронок — 1, пользователей — 1, полей сделки — 1."]


def test_subscribe_webhook_reports_in_russian(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.get(f"{API}/webhooks", json={"_embedded": {"webhooks": [
        {"destination": account.webhook_url, "settings": ["add_lead", "update_lead", "status_lead", "delete_lead",
                                                         "restore_lead", "responsible_lead"]}]}})
    assert run_action(staff_client, "action_subscribe_webhook", account) == [
        f"{account.name}: вебхук подписан ({account.webhook_url})."]


def test_rotate_webhook_key_reports_in_russian(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.get(f"{API}/webhooks", status=204, body=b"")
    amocrm_mock.post(f"{API}/webhooks", json={"id": 2})
    amocrm_mock.delete(f"{API}/webhooks", status=204, body=b"")
    assert run_action(staff_client, "action_rotate_webhook_key", account) == [
        f"{account.name}: новый адрес вебхука, подписан в amoCRM."]


def test_rotate_webhook_key_without_a_connection_says_what_to_do_in_russian(staff_client):
    account = make_account(host="", state="not_connected")
    [message] = run_action(staff_client, "action_rotate_webhook_key", account)
    account.refresh_from_db()
    assert message == f"{account.name}: новый адрес вебхука — добавьте его в amoCRM вручную: {account.webhook_url}."


def test_disconnect_reports_in_russian(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.delete(f"{API}/webhooks", status=204, body=b"")
    assert run_action(staff_client, "action_disconnect", account) == [
        f"{account.name}: отключено (токены удалены)."]


def test_the_account_list_speaks_russian(staff_client):
    make_account(long_lived=True)
    html = staff_client.get(CHANGELIST, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "(долгосрочный)" in html and "(long-lived)" not in html


def test_reprocess_reports_in_russian(staff_client, django_capture_on_commit_callbacks):
    account = make_account()
    event = WebhookEvent.objects.create(account=account, body=b"x=1", body_sha256="0" * 64,
                                        state=WebhookEvent.State.FAILED)
    with django_capture_on_commit_callbacks(execute=False):
        messages = run_action(staff_client, "action_reprocess", event,
                              url=reverse("admin:amocrm_webhookevent_changelist"))
    assert messages == ["Событий вебхука поставлено в очередь на повторную обработку: 1."]
