"""Who may do what in the amoCRM admin: actions need their permission, secrets are never on a page."""

import re

import pytest
import responses
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from amocrm.models import Account, Token, WebhookEvent
from tests.factories import API

CHANGELIST = reverse("admin:amocrm_account_changelist")
EVENTS = reverse("admin:amocrm_webhookevent_changelist")
ACCOUNT_ACTIONS = ["action_connect", "action_test_connection", "action_refresh_token", "action_sync_metadata",
                   "action_subscribe_webhook", "action_rotate_webhook_key", "action_disconnect"]

CLIENT_SECRET = "CLIENT-SECRET-4f9c2a7e"
ACCESS_TOKEN = "ACCESS-TOKEN-8d3b1c6f"
REFRESH_TOKEN = "REFRESH-TOKEN-2e7a9d4b"

pytestmark = [pytest.mark.django_db, pytest.mark.account(access_token=ACCESS_TOKEN, refresh_token=REFRESH_TOKEN,
                                                         client_secret=CLIENT_SECRET)]


def staff_with(django_user_model, username: str, *perms: str):
    """An active staff user holding exactly these permissions ("app_label.codename")."""
    user = django_user_model.objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


VIEW_ONLY = ("amocrm.view_account", "amocrm.view_token", "amocrm.view_webhookevent", "amocrm.view_synclog")


@pytest.fixture
def viewer(client, django_user_model):
    client.force_login(staff_with(django_user_model, "viewer", *VIEW_ONLY))
    return client


@pytest.fixture
def changer(client, django_user_model):
    client.force_login(staff_with(django_user_model, "changer", *VIEW_ONLY, "amocrm.change_account"))
    return client


@pytest.fixture
def any_call(amocrm_mock):
    """Answers every request amoCRM could get, so a call that should not happen is counted, not just failed."""
    for method in (responses.GET, responses.POST, responses.PATCH, responses.DELETE):
        amocrm_mock.add(method, re.compile(r".*"), json={"id": 1, "name": "x"})
    return amocrm_mock


def snapshot(account: Account) -> tuple:
    account.refresh_from_db()
    token = Token.objects.filter(account=account).first()
    return (account.state, account.host, account.webhook_key, account.webhook_subscribed_at,
            account.metadata_synced_at, account.last_success_at,
            token and (token.access_token, token.refresh_token, token.expires_at, token.refresh_count))


def post_action(client, url, action, *objects):
    response = client.post(url, {"action": action, "_selected_action": [o.pk for o in objects]})
    return response, [str(m) for m in get_messages(response.wsgi_request)]


# --- actions ------------------------------------------------------------------------------------


def test_a_view_only_user_sees_no_account_action(viewer, account):
    response = viewer.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert account.name in html
    for action in ACCOUNT_ACTIONS:
        assert f'value="{action}"' not in html


@pytest.mark.parametrize("action", ACCOUNT_ACTIONS)
def test_a_view_only_user_cannot_run_an_account_action(viewer, account, any_call, action):
    before = snapshot(account)

    response, messages = post_action(viewer, CHANGELIST, action, account)

    assert len(any_call.calls) == 0
    assert snapshot(account) == before
    assert not (response.status_code == 302 and "connect" in response["Location"])
    assert not any(account.name in message for message in messages)


def test_a_user_who_may_change_accounts_sees_and_runs_the_actions(changer, account, any_call):
    html = changer.get(CHANGELIST).content.decode()
    for action in ACCOUNT_ACTIONS:
        assert f'value="{action}"' in html

    _, messages = post_action(changer, CHANGELIST, "action_test_connection", account)

    assert messages == [f"{account.name}: connection works (amoCRM account x, id 1)."]
    assert len(any_call.calls) == 1


def test_the_connect_url_is_refused_without_change_permission(viewer, account, any_call):
    response = viewer.get(reverse("admin:amocrm_account_connect", args=[account.pk]))

    assert response.status_code == 403
    assert len(any_call.calls) == 0


def test_the_connect_button_is_shown_only_to_users_who_may_connect(viewer, changer, account, client,
                                                                   django_user_model):
    connect = reverse("admin:amocrm_account_connect", args=[account.pk])
    page = reverse("admin:amocrm_account_change", args=[account.pk])
    assert connect in changer.get(page).content.decode()

    client.force_login(django_user_model.objects.get(username="viewer"))
    assert connect not in client.get(page).content.decode()


def test_the_connect_url_starts_oauth_for_a_user_who_may_change_the_account(changer, account):
    response = changer.get(reverse("admin:amocrm_account_connect", args=[account.pk]))

    assert response.status_code == 302
    assert "state=" in response["Location"]


# --- webhook events ---------------------------------------------------------------------------


def make_event(account) -> WebhookEvent:
    return WebhookEvent.objects.create(account=account, body=b"leads[status][0][id]=1", body_sha256="x" * 64,
                                       state=WebhookEvent.State.FAILED, error="boom", attempts=1,
                                       received_at=timezone.now())


def test_a_view_only_user_can_neither_see_nor_run_reprocess(viewer, account, any_call):
    event = make_event(account)

    assert 'value="action_reprocess"' not in viewer.get(EVENTS).content.decode()
    _, messages = post_action(viewer, EVENTS, "action_reprocess", event)

    event.refresh_from_db()
    assert (event.state, event.error, event.attempts) == (WebhookEvent.State.FAILED, "boom", 1)
    assert not any("reprocessing" in message for message in messages)
    assert len(any_call.calls) == 0


def test_an_operator_may_reprocess_events_without_changing_accounts(client, django_user_model, account, any_call):
    """The later "operators" group: view everything, reprocess events, but no account actions."""
    client.force_login(staff_with(django_user_model, "operator", *VIEW_ONLY, "amocrm.reprocess_webhookevent"))
    event = make_event(account)

    assert 'value="action_reprocess"' in client.get(EVENTS).content.decode()
    _, messages = post_action(client, EVENTS, "action_reprocess", event)

    assert messages == ["1 webhook event(s) queued for reprocessing."]
    event.refresh_from_db()
    assert event.state == WebhookEvent.State.RECEIVED
    html = client.get(CHANGELIST).content.decode()
    assert not any(f'value="{action}"' in html for action in ACCOUNT_ACTIONS)


def test_the_custom_permissions_exist_with_readable_names():
    names = dict(Permission.objects.filter(codename__in=["reprocess_webhookevent", "reread_sale"])
                 .values_list("codename", "name"))

    assert set(names) == {"reprocess_webhookevent", "reread_sale"}
    assert all(name.startswith("Can ") for name in names.values())


# --- secrets on pages -------------------------------------------------------------------------


def secrets_of(account) -> list[str]:
    return [CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN, "CLIENT-SECRET", "ACCESS-TOKEN", "REFRESH-TOKEN"]


def test_a_view_only_user_sees_no_secret_no_token_and_no_webhook_key(viewer, account):
    Account.objects.filter(pk=account.pk).update(
        webhook_error=f"amoCRM refused the webhook subscription. Add it by hand: URL {account.webhook_url}",
        last_error=f"Something failed near {account.webhook_url}")
    account.refresh_from_db()

    html = viewer.get(reverse("admin:amocrm_account_change", args=[account.pk])).content.decode()

    for secret in secrets_of(account):
        assert secret not in html
    assert account.webhook_key not in html
    assert account.webhook_key[:12] not in html
    assert "…" + CLIENT_SECRET[-4:] in html  # the last four characters, at most
    listing = viewer.get(CHANGELIST).content.decode()
    assert account.webhook_key[:12] not in listing and CLIENT_SECRET not in listing


def test_a_user_who_may_change_sees_the_webhook_url_but_never_secrets(changer, account):
    html = changer.get(reverse("admin:amocrm_account_change", args=[account.pk])).content.decode()

    for secret in secrets_of(account):
        assert secret not in html
    assert account.webhook_url in html
    assert 'type="password"' in html


def test_a_secret_that_ended_up_in_an_error_text_is_not_shown(changer, account):
    Account.objects.filter(pk=account.pk).update(last_error=f"amoCRM said: bad secret {CLIENT_SECRET}",
                                                 webhook_error=f"token {ACCESS_TOKEN} refused",
                                                 last_error_at=timezone.now())

    page = changer.get(reverse("admin:amocrm_account_change", args=[account.pk])).content.decode()
    listing = changer.get(CHANGELIST).content.decode()

    for html in (page, listing):
        assert CLIENT_SECRET not in html and ACCESS_TOKEN not in html


def test_history_never_shows_the_secret(changer, account):
    url = reverse("admin:amocrm_account_change", args=[account.pk])
    response = changer.post(url, {"name": "Renamed", "client_id": "client-id-1", "client_secret": "NEW-SECRET-77a1b2c3",
                                  "redirect_uri": account.redirect_uri, "host": account.host,
                                  "token-TOTAL_FORMS": "1", "token-INITIAL_FORMS": "1", "token-MIN_NUM_FORMS": "0",
                                  "token-MAX_NUM_FORMS": "0", "token-0-id": account.token.pk,
                                  "token-0-account": account.pk})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.client_secret == "NEW-SECRET-77a1b2c3"

    history = changer.get(reverse("admin:amocrm_account_history", args=[account.pk])).content.decode()

    assert "Renamed" in history
    assert "NEW-SECRET" not in history and CLIENT_SECRET not in history


def test_the_sync_log_page_does_not_show_the_webhook_key(viewer, account):
    from amocrm.models import SyncLog

    log = SyncLog.objects.create(account=account, operation="webhooks.subscribe", status="error", method="POST",
                                 path="/api/v4/webhooks", request_body=f'{{"destination": "{account.webhook_url}"}}',
                                 error=f"amoCRM answered 400: destination {account.webhook_url} refused")

    html = viewer.get(reverse("admin:amocrm_synclog_change", args=[log.pk])).content.decode()

    assert account.webhook_key[:12] not in html
    assert "/api/webhooks/amocrm/" in html


def test_the_catch_all_mock_counts_every_call(any_call, account):
    """The "no HTTP call" assertions above can fail: a call to amoCRM is counted."""
    import requests

    requests.get(f"{API}/account", timeout=1)
    assert len(any_call.calls) == 1
