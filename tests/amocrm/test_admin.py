"""The account admin: badges, every action (each calls a service and reports), read-only logs."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from amocrm.models import Account, SyncLog, Token
from tests.amocrm.test_oauth import mock_metadata
from tests.factories import API, TOKEN_URL, make_account

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:amocrm_account_changelist")


def run_action(client, action, *accounts):
    response = client.post(CHANGELIST, {"action": action, "_selected_action": [a.pk for a in accounts]})
    return response, [str(m) for m in get_messages(response.wsgi_request)]


def test_the_list_shows_badges_for_every_state(staff_client):
    make_account(name="Healthy")
    expiring = make_account(name="Expiring", host="https://exp.amocrm.ru", expires_in=600)
    make_account(name="Revoked", host="https://rev.amocrm.ru", state=Account.State.NEEDS_REAUTH)
    make_account(name="Blocked", host="https://blk.amocrm.ru", state=Account.State.BLOCKED)
    make_account(name="Fresh", host="", state=Account.State.NOT_CONNECTED)
    html = staff_client.get(CHANGELIST).content.decode()
    for label in ("Connected", "Token expiring soon", "Needs re-authorization", "Blocked by amoCRM", "Not connected"):
        assert label in html
    filtered = staff_client.get(CHANGELIST, {"health": "expiring"}).content.decode()
    assert expiring.name in filtered and "Healthy" not in filtered


def test_the_change_form_shows_urls_to_copy_and_never_the_secret(staff_client):
    account = make_account()
    html = staff_client.get(reverse("admin:amocrm_account_change", args=[account.pk])).content.decode()
    assert account.webhook_url in html
    assert "http://testserver/amocrm/oauth/callback/" in html
    assert "client-secret-1" not in html and "access-1" not in html and "refresh-1" not in html
    assert "…et-1" in html  # the last four characters only


def test_saving_the_form_with_a_blank_secret_keeps_the_stored_one(staff_client):
    account = make_account()
    url = reverse("admin:amocrm_account_change", args=[account.pk])
    staff_client.post(url, {"name": "Renamed", "client_id": "client-id-1", "client_secret": "",
                            "redirect_uri": account.redirect_uri, "host": account.host,
                            "token-TOTAL_FORMS": "1", "token-INITIAL_FORMS": "1", "token-MIN_NUM_FORMS": "0",
                            "token-MAX_NUM_FORMS": "0", "token-0-id": account.token.pk,
                            "token-0-account": account.pk})
    account.refresh_from_db()
    assert account.name == "Renamed" and account.client_secret == "client-secret-1"


def test_the_connect_action_redirects_to_the_consent_page(staff_client):
    account = make_account()
    response, _ = run_action(staff_client, "action_connect", account)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:amocrm_account_connect", args=[account.pk])
    _, messages = run_action(staff_client, "action_connect", account, make_account(host="https://b.amocrm.ru"))
    assert messages == ["Select exactly one account to connect."]


def test_the_test_connection_action_reports_the_account(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.get(f"{API}/account", json={"id": 31000001, "name": "Shop"})
    _, messages = run_action(staff_client, "action_test_connection", account)
    assert messages == [f"{account.name}: connection works (amoCRM account Shop, id 31000001)."]


def test_the_test_connection_action_reports_failures(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.get(f"{API}/account", status=500, body="oops")
    _, messages = run_action(staff_client, "action_test_connection", account)
    assert messages == [f"{account.name}: test connection failed. amoCRM had a temporary failure on its side. "
                        "Nothing, unless it lasts for hours: then check amoCRM&#x27;s status page. "
                        '<details style="display:inline"><summary>Technical detail</summary>amoCRM answered 500.'
                        "</details>"]


def test_the_refresh_token_action_refreshes_now(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 86400, "access_token": "a2",
                                 "refresh_token": "r2"})
    _, messages = run_action(staff_client, "action_refresh_token", account)
    assert messages[0].startswith(f"{account.name}: token refreshed, valid until")
    assert Token.objects.get(account=account).access_token == "a2"


def test_the_sync_metadata_action_fills_the_cache(staff_client, amocrm_mock):
    account = make_account()
    mock_metadata(amocrm_mock)
    _, messages = run_action(staff_client, "action_sync_metadata", account)
    assert messages == [f"{account.name}: metadata synced: 1 pipelines, 1 users, 1 deal fields."]


def test_the_subscribe_webhook_action_subscribes_once(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.get(f"{API}/webhooks", json={"_embedded": {"webhooks": [
        {"destination": account.webhook_url, "settings": ["add_lead", "update_lead", "status_lead", "delete_lead",
                                                         "restore_lead", "responsible_lead"]}]}})
    response, messages = run_action(staff_client, "action_subscribe_webhook", account)
    assert messages == [f"{account.name}: webhook subscribed ({account.webhook_url})."]
    assert not any(c.request.method == "POST" for c in amocrm_mock.calls)  # already there: nothing duplicated
    # The message (with the URL's key) waits in the server-side session, never in a cookie the browser keeps.
    assert all(account.webhook_key not in morsel.value for morsel in response.cookies.values())
    assert "messages" not in response.cookies


def test_the_rotate_webhook_key_action_resubscribes(staff_client, amocrm_mock):
    account = make_account()
    old_url = account.webhook_url
    amocrm_mock.get(f"{API}/webhooks", status=204, body=b"")
    amocrm_mock.post(f"{API}/webhooks", json={"id": 2})
    amocrm_mock.delete(f"{API}/webhooks", status=204, body=b"")
    _, messages = run_action(staff_client, "action_rotate_webhook_key", account)
    account.refresh_from_db()
    assert account.webhook_url != old_url
    assert messages == [f"{account.name}: new webhook URL and subscribed it."]
    deleted = [c for c in amocrm_mock.calls if c.request.method == "DELETE"]
    assert old_url.encode() in deleted[0].request.body
    assert staff_client.post(old_url, data="x=1", content_type="application/x-www-form-urlencoded").status_code == 404


def test_the_disconnect_action_unsubscribes_and_deletes_tokens(staff_client, amocrm_mock):
    account = make_account()
    amocrm_mock.delete(f"{API}/webhooks", status=204, body=b"")
    _, messages = run_action(staff_client, "action_disconnect", account)
    account.refresh_from_db()
    assert messages == [f"{account.name}: disconnected (tokens deleted)."]
    assert account.state == Account.State.NOT_CONNECTED
    assert not Token.objects.filter(account=account).exists()
    assert len(amocrm_mock.calls) == 1


def test_a_long_lived_token_close_to_expiry_is_warned_about(staff_client):
    account = make_account(long_lived=True, expires_in=int(timedelta(days=5).total_seconds()))
    html = staff_client.get(reverse("admin:amocrm_account_change", args=[account.pk])).content.decode()
    assert "The long-lived token expires on" in html
    assert account.health() == "expiring"


def test_the_sync_log_admin_is_read_only_with_pretty_escaped_json(staff_client):
    account = make_account()
    log = SyncLog.objects.create(account=account, operation="leads.complex", status="error", http_status=400,
                                 request_body='{"name": "<script>alert(1)</script>"}', created_at=timezone.now())
    assert staff_client.get(reverse("admin:amocrm_synclog_add")).status_code == 403
    html = staff_client.get(reverse("admin:amocrm_synclog_change", args=[log.pk])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    listing = staff_client.get(reverse("admin:amocrm_synclog_changelist"), {"status": "error"})
    assert "leads.complex" in listing.content.decode()


def test_the_refresh_token_action_on_an_account_without_a_token_says_to_connect_it(staff_client, amocrm_mock):
    account = make_account(name="Fresh", host="", state=Account.State.NOT_CONNECTED)
    response, messages = run_action(staff_client, "action_refresh_token", account)
    assert response.status_code == 302
    assert len(messages) == 1 and messages[0].startswith("Fresh: refresh token failed. The account is not connected")
    assert "has no token to refresh" in messages[0]
    assert not amocrm_mock.calls
