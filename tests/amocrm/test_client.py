"""The API client: classification of amoCRM's answers, 204s, pagination, sync log and redaction."""

import json

import pytest
import responses

from amocrm import errors
from amocrm.client import AmoCRMClient
from amocrm.models import Account, SyncLog
from amocrm.ratelimit import backend
from tests.factories import API

pytestmark = pytest.mark.django_db


def test_it_sends_the_bearer_token_and_a_user_agent(amocrm_mock, account):
    amocrm_mock.get(f"{API}/account", json={"id": 31000001, "name": "Shop"})
    assert AmoCRMClient(account).account_get()["name"] == "Shop"
    request = amocrm_mock.calls[0].request
    assert request.headers["Authorization"] == "Bearer access-1"
    assert request.headers["User-Agent"].startswith("amocrm-django-integration/")


def test_an_empty_search_answered_204_is_an_empty_result(amocrm_mock, account):
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    assert AmoCRMClient(account).contacts_search("+79161234567") == []
    log = SyncLog.objects.get()
    assert (log.status, log.http_status) == ("ok", 204)


def test_429_is_transient_and_pauses_the_account(amocrm_mock, account):
    amocrm_mock.get(f"{API}/account", status=429, body="<html>Too many</html>", content_type="text/html")
    with pytest.raises(errors.RateLimited):
        AmoCRMClient(account).account_get()
    # The pause is shared: the next request for this account must wait at least a second.
    wait = backend().try_take(f"account-{account.pk}", 7, 1.2)
    assert wait >= 1.0


def test_403_with_html_blocks_the_account_and_stops_all_calls(amocrm_mock, account):
    amocrm_mock.get(f"{API}/account", status=403, body="<html><body>Blocked</body></html>", content_type="text/html")
    with pytest.raises(errors.AccountBlocked):
        AmoCRMClient(account).account_get()
    account.refresh_from_db()
    assert account.state == Account.State.BLOCKED
    assert account.health() == "blocked"
    with pytest.raises(errors.AccountUnavailable):
        AmoCRMClient(account).account_get()
    assert len(amocrm_mock.calls) == 1


def test_403_with_json_is_a_permanent_error_not_a_block(amocrm_mock, account):
    amocrm_mock.post(f"{API}/webhooks", status=403, json={"title": "Forbidden", "detail": "Not enough rights"})
    with pytest.raises(errors.PermanentError):
        AmoCRMClient(account).webhook_subscribe("https://x/", ["add_lead"])
    account.refresh_from_db()
    assert account.state == Account.State.CONNECTED


def test_5xx_and_network_errors_are_transient(amocrm_mock, account):
    amocrm_mock.get(f"{API}/account", status=502, body="bad gateway")
    with pytest.raises(errors.TransientError):
        AmoCRMClient(account).account_get()
    import requests

    amocrm_mock.replace(responses.GET, f"{API}/account", body=requests.ConnectionError("reset"))
    with pytest.raises(errors.TransientError):
        AmoCRMClient(account).account_get()
    account.refresh_from_db()
    assert account.error_count == 2
    assert account.health() == "error"


def test_validation_errors_are_parsed_into_the_message(amocrm_mock, account):
    amocrm_mock.post(f"{API}/leads/complex", status=400, json={
        "validation-errors": [{"request_id": "1", "errors": [
            {"code": "NotSupportedChoice", "path": "custom_fields_values.0.field_id", "detail": "unknown field"}]}],
        "title": "Bad Request", "status": 400, "detail": "Request validation failed"})
    with pytest.raises(errors.ValidationFailed) as caught:
        AmoCRMClient(account).leads_complex_create([{}, {}])
    assert caught.value.errors == [{"request_id": "1", "code": "NotSupportedChoice",
                                    "path": "custom_fields_values.0.field_id", "detail": "unknown field"}]
    assert "#1 custom_fields_values.0.field_id: NotSupportedChoice unknown field" in str(caught.value)
    assert not caught.value.transient


def test_pagination_follows_next_links_until_they_stop(amocrm_mock, account):
    def page(n, has_next):
        body = {"_embedded": {"leads": [{"id": n * 10 + i} for i in range(2)]}, "_links": {}}
        if has_next:
            body["_links"]["next"] = {"href": f"{API}/leads?page={n + 1}&limit=250"}
        return body

    amocrm_mock.get(f"{API}/leads", json=page(1, True), match=[responses.matchers.query_param_matcher(
        {"page": "1", "limit": "250", "filter[updated_at][from]": "100", "with": "contacts,loss_reason"})])
    amocrm_mock.get(f"{API}/leads", json=page(2, True), match=[responses.matchers.query_param_matcher(
        {"page": "2", "limit": "250", "filter[updated_at][from]": "100", "with": "contacts,loss_reason"})])
    amocrm_mock.get(f"{API}/leads", status=204, body=b"", match=[responses.matchers.query_param_matcher(
        {"page": "3", "limit": "250", "filter[updated_at][from]": "100", "with": "contacts,loss_reason"})])
    ids = [d["id"] for d in AmoCRMClient(account).leads_updated_since(100)]
    assert ids == [10, 11, 20, 21]


def test_pagination_never_follows_a_next_link_to_another_host(amocrm_mock, account):
    amocrm_mock.get(f"{API}/users", json={"_embedded": {"users": [{"id": 1}]},
                                     "_links": {"next": {"href": "https://evil.example/api/v4/users?page=2"}}})
    assert [u["id"] for u in AmoCRMClient(account).users_list()] == [1]
    assert len(amocrm_mock.calls) == 1


def test_the_sync_log_records_every_call_redacted(amocrm_mock, account):
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5, "contact_id": 6, "request_id": ["0"], "merged": False}],
                headers={"X-Request-Id": "req-42"})
    AmoCRMClient(account, log_context={"lead_ids": ["a"]}).leads_complex_create(
        [{"name": "Deal", "access_token": "SHOULD-NOT-LEAK-1234"}])
    log = SyncLog.objects.get()
    assert (log.operation, log.method, log.path, log.http_status) == ("leads.complex", "POST", "/api/v4/leads/complex",
                                                                       200)
    assert log.amocrm_request_id == "req-42"
    assert log.duration_ms is not None
    assert "SHOULD-NOT-LEAK" not in log.request_body and "…1234" in log.request_body
    assert json.loads(log.response_body)[0]["id"] == 5
    assert log.context == {"lead_ids": ["a"]}


def test_no_call_is_made_for_an_account_that_needs_reauthorization(amocrm_mock, account):
    Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
    with pytest.raises(errors.AccountUnavailable):
        AmoCRMClient(account).account_get()
    assert len(amocrm_mock.calls) == 0


def test_an_untrusted_host_is_never_contacted(amocrm_mock, account):
    Account.objects.filter(pk=account.pk).update(host="https://evil.example")
    account.refresh_from_db()
    with pytest.raises(errors.AccountUnavailable):
        AmoCRMClient(account).account_get()
    assert len(amocrm_mock.calls) == 0
