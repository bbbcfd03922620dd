"""Connecting an account: consent URL and state, the callback page, the CLI."""

import json
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.core import signing
from django.core.management import CommandError, call_command
from django.urls import reverse

from amocrm import oauth
from amocrm.models import Account, AmoUser, CustomField, Pipeline, Stage, SyncLog
from tests.factories import API, HOST, TOKEN_URL

pytestmark = pytest.mark.django_db

CALLBACK = "/amocrm/oauth/callback/"
TOKEN_ANSWER = {"token_type": "Bearer", "expires_in": 86400, "access_token": "new-access",
                "refresh_token": "new-refresh"}


def mock_metadata(rsps):
    rsps.get(f"{API}/account", json={"id": 31000001, "name": "Sandbox shop", "subdomain": "sandbox",
                                     "currency": "RUB"})
    rsps.get(f"{API}/leads/pipelines", json={"_embedded": {"pipelines": [
        {"id": 777, "name": "Sales", "sort": 1, "is_main": True, "_embedded": {"statuses": [
            {"id": 1001, "name": "Unsorted", "sort": 10, "type": 1},
            {"id": 1002, "name": "New", "sort": 20, "type": 0},
            {"id": 142, "name": "Won", "sort": 10000, "type": 0},
            {"id": 143, "name": "Lost", "sort": 11000, "type": 0}]}}]}})
    rsps.get(f"{API}/users", json={"_embedded": {"users": [{"id": 5, "name": "Anna", "email": "a@x.ru"}]}})
    rsps.get(f"{API}/leads/custom_fields", json={"_embedded": {"custom_fields": [
        {"id": 900, "name": "utm_source", "code": "UTM_SOURCE", "type": "tracking_data"}]}})
    rsps.get(f"{API}/contacts/custom_fields", status=204, body=b"")
    rsps.get(f"{API}/webhooks", status=204, body=b"")
    rsps.post(f"{API}/webhooks", json={"id": 1, "destination": "x", "settings": []})


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("op", "op@example.com", "pw")


@pytest.fixture
def new_account():
    return Account.objects.create(name="Shop", client_id="cid", client_secret="csecret",
                                  redirect_uri="http://testserver/amocrm/oauth/callback/")


def test_the_consent_url_carries_client_id_mode_and_a_signed_state(new_account, staff):
    url = oauth.consent_url(account=new_account, user_id=staff.pk)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://www.amocrm.ru/oauth"
    query = parse_qs(parts.query)
    assert query["client_id"] == ["cid"] and query["mode"] == ["post_message"]
    assert "redirect_uri" not in query  # fixed in the integration settings, never a parameter
    assert oauth.read_state(query["state"][0], user_id=staff.pk) == new_account.pk


def test_the_admin_connect_button_redirects_to_the_consent_page(client, staff, new_account):
    client.force_login(staff)
    response = client.get(reverse("admin:amocrm_account_connect", args=[new_account.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith("https://www.amocrm.ru/oauth?client_id=cid&state=")


def _state_for(client, account):
    location = client.get(reverse("admin:amocrm_account_connect", args=[account.pk]))["Location"]
    return parse_qs(urlsplit(location).query)["state"][0]


def test_the_callback_connects_the_account(client, staff, new_account, amocrm_mock):
    client.force_login(staff)
    state = _state_for(client, new_account)
    amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
    mock_metadata(amocrm_mock)
    response = client.get(CALLBACK, {"code": "the-code", "state": state, "referer": "sandbox.test"})
    assert response.status_code == 200
    assert "Connected to Sandbox shop" in response.content.decode()
    new_account.refresh_from_db()
    assert new_account.state == Account.State.CONNECTED
    assert new_account.host == HOST
    assert (new_account.amocrm_account_id, new_account.currency) == (31000001, "RUB")
    assert new_account.token.access_token == "new-access" and new_account.token.refresh_token == "new-refresh"
    assert new_account.webhook_subscribed_at is not None
    sent = json.loads(amocrm_mock.calls[0].request.body)
    assert sent == {"client_id": "cid", "client_secret": "csecret", "grant_type": "authorization_code",
                    "code": "the-code", "redirect_uri": "http://testserver/amocrm/oauth/callback/"}
    assert Pipeline.objects.get(account=new_account).is_main
    assert set(Stage.objects.values_list("amocrm_id", flat=True)) == {1001, 1002, 142, 143}
    assert AmoUser.objects.get(account=new_account).name == "Anna"
    assert CustomField.objects.get(account=new_account).code == "UTM_SOURCE"
    subscribe = json.loads(amocrm_mock.calls[-1].request.body)
    assert subscribe["destination"] == new_account.webhook_url
    assert set(subscribe["settings"]) == {"add_lead", "update_lead", "status_lead", "delete_lead",
                                          "restore_lead", "responsible_lead"}
    # The code and the tokens are in the sync log only redacted.
    exchange = SyncLog.objects.get(operation="oauth.exchange_code")
    assert "the-code" not in exchange.request_body and "csecret" not in exchange.request_body
    assert "new-access" not in exchange.response_body and "new-refresh" not in exchange.response_body


def test_a_forged_referer_sends_nothing_at_all(client, staff, new_account, amocrm_mock):
    client.force_login(staff)
    state = _state_for(client, new_account)
    response = client.get(CALLBACK, {"code": "c", "state": state, "referer": "attacker.example.com"})
    assert response.status_code == 400
    assert "not an amoCRM or Kommo account host" in response.content.decode()
    assert len(amocrm_mock.calls) == 0
    new_account.refresh_from_db()
    assert new_account.state == Account.State.NOT_CONNECTED
    assert "attacker.example.com" in new_account.last_error


def test_a_bad_state_is_refused(client, staff, new_account, amocrm_mock):
    client.force_login(staff)
    response = client.get(CALLBACK, {"code": "c", "state": "forged", "referer": "sandbox.test"})
    assert response.status_code == 400
    assert "not one this site issued" in response.content.decode()
    assert len(amocrm_mock.calls) == 0


def test_an_expired_state_is_refused(client, staff, new_account, amocrm_mock, monkeypatch):
    client.force_login(staff)
    state = _state_for(client, new_account)
    monkeypatch.setattr(oauth, "STATE_MAX_AGE", -1)
    response = client.get(CALLBACK, {"code": "c", "state": state, "referer": "sandbox.test"})
    assert response.status_code == 400
    assert "expired" in response.content.decode()


def test_a_state_from_another_user_or_used_twice_is_refused(client, staff, new_account, django_user_model, amocrm_mock):
    state = oauth.make_state(account=new_account, user_id=staff.pk + 1000)
    client.force_login(staff)
    assert client.get(CALLBACK, {"code": "c", "state": state, "referer": "sandbox.test"}).status_code == 400
    good = _state_for(client, new_account)
    amocrm_mock.post(TOKEN_URL, status=400, json={"hint": "Authorization code has expired", "title": "Bad request",
                                             "status": 400})
    client.get(CALLBACK, {"code": "c", "state": good, "referer": "sandbox.test"})
    again = client.get(CALLBACK, {"code": "c", "state": good, "referer": "sandbox.test"})
    assert "already used" in again.content.decode()


def test_the_callback_without_a_logged_in_staff_user_asks_to_log_in(client, new_account):
    state = signing.dumps({"a": new_account.pk, "u": 1, "n": "x"}, salt=oauth.STATE_SALT)
    response = client.get(CALLBACK, {"code": "c", "state": state, "referer": "sandbox.test"})
    assert response.status_code == 400
    assert "Log in to the admin" in response.content.decode()


def test_an_expired_code_is_explained(client, staff, new_account, amocrm_mock):
    client.force_login(staff)
    state = _state_for(client, new_account)
    amocrm_mock.post(TOKEN_URL, status=400, json={"hint": "Authorization code has expired", "title": "Bad request",
                                             "type": "x", "status": 400, "detail": "The authorization code expired"})
    response = client.get(CALLBACK, {"code": "old", "state": state, "referer": "sandbox.test"})
    assert response.status_code == 400
    assert "expired or was already used" in response.content.decode()
    new_account.refresh_from_db()
    assert new_account.state == Account.State.NOT_CONNECTED and "expired" in new_account.last_error


def test_an_invalid_client_is_explained(client, staff, new_account, amocrm_mock):
    client.force_login(staff)
    state = _state_for(client, new_account)
    amocrm_mock.post(TOKEN_URL, status=401, json={"title": "invalid client", "type": "x", "status": 401,
                                             "detail": "Client authentication failed"})
    response = client.get(CALLBACK, {"code": "c", "state": state, "referer": "sandbox.test"})
    assert "does not recognise the integration" in response.content.decode()
    assert "trailing slash" in response.content.decode()


def test_denied_access_is_explained(client, staff, new_account, amocrm_mock):
    client.force_login(staff)
    state = _state_for(client, new_account)
    response = client.get(CALLBACK, {"error": "access_denied", "state": state})
    assert response.status_code == 400
    assert "Access was not granted" in response.content.decode()
    assert len(amocrm_mock.calls) == 0


def test_denied_access_is_recorded_on_the_account(client, staff, new_account, amocrm_mock):
    client.force_login(staff)
    state = _state_for(client, new_account)
    client.get(CALLBACK, {"error": "access_denied", "state": state})
    new_account.refresh_from_db()
    assert "access_denied" in new_account.last_error and new_account.last_error_at is not None


def test_the_connect_service_records_why_connecting_failed(new_account, amocrm_mock):
    """The account keeps the operator's explanation, whoever called the service (callback page or CLI)."""
    from amocrm.services import ConnectError, account_connect

    with pytest.raises(ConnectError) as refused:
        account_connect(account=new_account, host="attacker.example.com", code="c")
    new_account.refresh_from_db()
    assert new_account.last_error == str(refused.value) and "attacker.example.com" in new_account.last_error

    amocrm_mock.post(TOKEN_URL, status=400, json={"hint": "Authorization code has expired", "title": "Bad request",
                                             "status": 400})
    with pytest.raises(ConnectError) as expired:
        account_connect(account=new_account, host="sandbox.test", code="old")
    new_account.refresh_from_db()
    assert new_account.last_error == str(expired.value) and "expired or was already used" in new_account.last_error
    assert new_account.state == Account.State.NOT_CONNECTED


def test_metadata_entries_without_a_usable_id_are_skipped_not_fatal(amocrm_mock):
    from amocrm.services import account_sync_metadata
    from tests.factories import make_account

    account = make_account()
    mock_metadata(amocrm_mock)
    amocrm_mock.replace(responses.GET, f"{API}/leads/pipelines", json={"_embedded": {"pipelines": [
        {"name": "No id"},
        {"id": "778", "name": "Second", "_embedded": {"statuses": [{"name": "No id"}, {"id": 2001, "name": "A"}]}},
    ]}})
    amocrm_mock.replace(responses.GET, f"{API}/users", json={"_embedded": {"users": [{"name": "Ghost"}, {"id": 6}]}})

    account_sync_metadata(account=account)

    assert list(Pipeline.objects.values_list("amocrm_id", "name")) == [(778, "Second")]
    assert list(Stage.objects.values_list("amocrm_id", flat=True)) == [2001]
    assert list(AmoUser.objects.values_list("amocrm_id", flat=True)) == [6]


def test_the_cli_connects_with_a_code_and_prints_json(amocrm_mock):
    amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
    mock_metadata(amocrm_mock)
    out = StringIO()
    args = ["--host", "sandbox.test", "--client-id", "cid", "--client-secret", "cs",
            "--redirect-uri", "https://site/amocrm/oauth/callback/", "--code", "c1", "--json"]
    call_command("amocrm_connect", *args, stdout=out)
    result = json.loads(out.getvalue())
    account = Account.objects.get()
    assert result["account"] == account.pk
    assert result["amocrm_account_id"] == 31000001
    assert result["webhook_url"] == account.webhook_url and result["webhook_url"].startswith("http://testserver/")
    # The default lead source created on connect, by its public key (never the database id).
    assert result["lead_source_key"] == account.lead_sources.get(is_default=True).public_key
    # Idempotent: the same host updates the same account.
    amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
    call_command("amocrm_connect", *args[:-3], "--code", "c2", "--name", "Renamed", stdout=StringIO())
    assert Account.objects.count() == 1
    assert Account.objects.get().name == "Renamed"


def test_the_cli_stores_a_long_lived_token(amocrm_mock):
    mock_metadata(amocrm_mock)
    call_command("amocrm_connect", "--host", "http://sandbox.test", "--client-id", "cid", "--client-secret", "cs",
                 "--redirect-uri", "https://site/cb/", "--long-lived-token", "LLT-xyz", stdout=StringIO())
    account = Account.objects.get()
    assert account.token.long_lived and account.token.refresh_token == ""
    assert amocrm_mock.calls[0].request.headers["Authorization"] == "Bearer LLT-xyz"
    assert not any(c.request.url.endswith("/oauth2/access_token") for c in amocrm_mock.calls)


def test_the_cli_refuses_a_foreign_host_before_any_request(amocrm_mock):
    with pytest.raises(CommandError, match="not an amoCRM or Kommo account host"):
        call_command("amocrm_connect", "--host", "evil.example.com", "--client-id", "c", "--client-secret", "s",
                     "--redirect-uri", "https://site/cb/", "--code", "x")
    assert len(amocrm_mock.calls) == 0
    assert not Account.objects.exists()


def test_a_refused_webhook_subscription_leaves_instructions(client, staff, new_account, amocrm_mock):
    client.force_login(staff)
    state = _state_for(client, new_account)
    amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
    mock_metadata(amocrm_mock)
    amocrm_mock.replace(responses.POST, f"{API}/webhooks", status=403,
                   json={"title": "Forbidden", "detail": "Plan does not allow"})
    response = client.get(CALLBACK, {"code": "c", "state": state, "referer": "sandbox.test"})
    assert response.status_code == 200
    new_account.refresh_from_db()
    assert new_account.state == Account.State.CONNECTED
    assert new_account.webhook_subscribed_at is None
    assert "Add the webhook by hand" in new_account.webhook_error
    # Without the URL: its key is a credential, and the admin shows the URL on its own (issue 10, item 5).
    assert new_account.webhook_key not in new_account.webhook_error
    assert "webhook URL shown on this account's page" in new_account.webhook_error


def test_a_failed_reconnect_leaves_a_working_account_untouched(client, staff, amocrm_mock):
    """The referer names the host; it is saved only once a code was really exchanged there."""
    from tests.factories import make_account

    account = make_account(access_token="working-access", refresh_token="working-refresh")
    token_before = (account.token.access_token, account.token.refresh_token, account.token.expires_at)
    client.force_login(staff)
    state = _state_for(client, account)
    amocrm_mock.post("https://other.amocrm.ru/oauth2/access_token", status=400,
                json={"hint": "Authorization code has expired", "title": "Bad request", "status": 400})

    response = client.get(CALLBACK, {"code": "c", "state": state, "referer": "other.amocrm.ru"})

    assert response.status_code == 400
    assert [c.request.url for c in amocrm_mock.calls] == ["https://other.amocrm.ru/oauth2/access_token"]
    account.refresh_from_db()
    assert account.host == HOST
    assert account.state == Account.State.CONNECTED
    account.token.refresh_from_db()
    assert (account.token.access_token, account.token.refresh_token, account.token.expires_at) == token_before
    # Later refreshes still go to the account's own host, never to the one the referer named.
    amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
    from amocrm.tokens import account_refresh_token

    account_refresh_token(account_id=account.pk, force=True)
    assert amocrm_mock.calls[-1].request.url == TOKEN_URL


def test_a_successful_reconnect_moves_the_account_to_the_new_host(client, staff, amocrm_mock, settings):
    from tests.factories import make_account

    settings.AMOCRM_TRUSTED_HOSTS = ["http://sandbox.test", "http://moved.test"]
    account = make_account(access_token="old-access")
    client.force_login(staff)
    state = _state_for(client, account)
    amocrm_mock.post("http://moved.test/oauth2/access_token", json=TOKEN_ANSWER)
    amocrm_mock.get("http://moved.test/api/v4/account", json={"id": 31000001, "name": "Moved"})
    for path in ("leads/pipelines", "users", "leads/custom_fields", "contacts/custom_fields", "webhooks"):
        amocrm_mock.get(f"http://moved.test/api/v4/{path}", status=204, body=b"")
    amocrm_mock.post("http://moved.test/api/v4/webhooks", json={"id": 1})

    response = client.get(CALLBACK, {"code": "c", "state": state, "referer": "moved.test"})

    assert response.status_code == 200, response.content.decode()
    account.refresh_from_db()
    assert account.host == "http://moved.test"
    assert account.token.access_token == "new-access"


def test_the_callback_refuses_a_user_who_may_no_longer_change_the_account(client, new_account, amocrm_mock,
                                                                         django_user_model):
    """A state issued before the user lost the change permission connects nothing."""
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(viewer)
    state = oauth.make_state(account=new_account, user_id=viewer.pk)

    response = client.get(CALLBACK, {"code": "c", "state": state, "referer": "sandbox.test"})

    assert response.status_code == 403
    assert "may not connect" in response.content.decode()
    assert len(amocrm_mock.calls) == 0
    new_account.refresh_from_db()
    assert new_account.state == Account.State.NOT_CONNECTED and new_account.host == ""
