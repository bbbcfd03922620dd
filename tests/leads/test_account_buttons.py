"""The buttons on an account's page: each one with and without its permission, pause/resume, the pasted token."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from amocrm.models import Account, Token
from leads.models import Lead
from leads.push.engine import leads_push
from tests.amocrm.test_oauth import mock_metadata
from tests.factories import make_account
from tests.leads.conftest import API, calls_to, contacts_answer, make_lead, queued_task_names

pytestmark = pytest.mark.django_db

CHANGE_ONLY = ["test_connection", "sync_metadata", "subscribe_webhook", "reconcile", "test_lead",
               "rotate_webhook_key", "disconnect"]


def change_url(account) -> str:
    return reverse("admin:amocrm_account_change", args=[account.pk])


def button_url(account, key) -> str:
    return reverse("admin:amocrm_account_button", args=[account.pk, key])


def user_with(django_user_model, *codenames, username="someone"):
    user = django_user_model.objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="amocrm", codename__in=codenames))
    return user


def press(client, account, key, **data):
    response = client.post(button_url(account, key), data)
    return response, [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def admin_client_(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("op", "op@example.com", "pw"))
    return client


def test_a_superuser_sees_every_button_for_a_connected_account(admin_client_, account):
    page = admin_client_.get(change_url(account)).content.decode()
    for key in [*CHANGE_ONLY, "pause", "credentials"]:
        assert f'data-action="{key}"' in page
    assert 'data-action="resume"' not in page


def test_a_viewer_sees_no_button_and_may_press_none(client, django_user_model, account):
    client.force_login(user_with(django_user_model, "view_account"))
    page = client.get(change_url(account)).content.decode()
    assert "data-action=" not in page
    for key in [*CHANGE_ONLY, "pause", "resume"]:
        assert client.post(button_url(account, key)).status_code == 403
    assert client.get(reverse("admin:amocrm_account_credentials", args=[account.pk])).status_code == 403


def test_an_operator_with_the_pause_permission_sees_only_pause(client, django_user_model, account):
    client.force_login(user_with(django_user_model, "view_account", "pause_account"))
    page = client.get(change_url(account)).content.decode()
    assert 'data-action="pause"' in page
    assert not any(f'data-action="{key}"' in page for key in CHANGE_ONLY)
    response, _ = press(client, account, "pause")
    assert response.status_code == 302
    assert Account.objects.get(pk=account.pk).sending_paused_at is not None
    assert client.post(button_url(account, "disconnect")).status_code == 403


def test_a_user_who_may_change_accounts_but_not_pause_sees_every_button_but_pause(client, django_user_model,
                                                                                  account):
    client.force_login(user_with(django_user_model, "view_account", "change_account"))
    page = client.get(change_url(account)).content.decode()
    assert all(f'data-action="{key}"' in page for key in [*CHANGE_ONLY, "credentials"])
    assert 'data-action="pause"' not in page
    assert client.post(button_url(account, "pause")).status_code == 403
    assert Account.objects.get(pk=account.pk).sending_paused_at is None


def test_buttons_answer_only_post(admin_client_, account):
    assert admin_client_.get(button_url(account, "test_connection")).status_code == 405


def test_test_connection_reports_the_amocrm_account(admin_client_, account, amocrm_mock):
    amocrm_mock.get(f"{API}/account", json={"id": 31000001, "name": "Shop"})
    _, messages = press(admin_client_, account, "test_connection")
    assert messages == [f"{account.name}: The connection works (amoCRM account Shop, id 31000001)."]


def test_test_connection_failure_is_in_plain_words(admin_client_, account, amocrm_mock):
    amocrm_mock.get(f"{API}/account", status=503, body="down")
    _, [message] = press(admin_client_, account, "test_connection")
    assert "amoCRM had a temporary failure on its side." in message and "amoCRM answered 503." in message


def test_sync_metadata_fills_the_cache(admin_client_, account, amocrm_mock):
    mock_metadata(amocrm_mock)
    _, [message] = press(admin_client_, account, "sync_metadata")
    assert "1 pipelines, 1 users, 1 deal fields" in message
    assert account.pipelines.get().name == "Sales"


def test_subscribe_webhook_subscribes(admin_client_, account, amocrm_mock):
    amocrm_mock.get(f"{API}/webhooks", status=204, body=b"")
    amocrm_mock.post(f"{API}/webhooks", json={"id": 1})
    _, messages = press(admin_client_, account, "subscribe_webhook")
    assert messages == [f"{account.name}: The webhook is subscribed."]
    assert Account.objects.get(pk=account.pk).webhook_subscribed_at is not None


def test_reconcile_now_queues_the_reconciliation(admin_client_, account):
    _, messages = press(admin_client_, account, "reconcile")
    assert "Reconciliation queued" in messages[0]
    assert "sales.tasks.reconcile_account" in queued_task_names()


def test_a_test_lead_goes_through_the_whole_path(admin_client_, account_with_metadata, amocrm_mock,
                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _, messages = press(admin_client_, account_with_metadata, "test_lead")
    assert "Test lead created and queued" in messages[0]
    lead = Lead.objects.get(account=account_with_metadata)
    assert lead.name.startswith("Test lead") and lead.source.is_default
    assert "leads.tasks.push_account_leads" in queued_task_names()
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "request_id": ["0"]}])
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})
    leads_push(account_id=account_with_metadata.pk)
    lead.refresh_from_db()
    assert (lead.status, lead.amocrm_deal_id) == (Lead.Status.SENT, 5001)


def test_paused_leads_wait_visibly_and_go_on_resume(admin_client_, source, amocrm_mock,
                                                    django_capture_on_commit_callbacks):
    account = source.account
    press(admin_client_, account, "pause")
    lead = make_lead(source, name="Waiting while paused", email="wait@example.com", phone="")
    outcome = leads_push(account_id=account.pk)
    assert outcome.stopped == "paused" and not amocrm_mock.calls
    lead.refresh_from_db()
    assert lead.status == Lead.Status.PENDING
    listing = admin_client_.get(reverse("admin:leads_lead_changelist")).content.decode()
    assert "Paused: sending is paused for this account" in listing
    page = admin_client_.get(change_url(account)).content.decode()
    assert "Sending paused" in page and 'data-action="resume"' in page and 'data-action="pause"' not in page

    with django_capture_on_commit_callbacks(execute=True):
        _, messages = press(admin_client_, account, "resume")
    assert "Sending resumed" in messages[0]
    assert "leads.tasks.push_account_leads" in queued_task_names()
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer())
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "request_id": ["0"]}])
    leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.SENT and len(calls_to(amocrm_mock, "/leads/complex")) == 1


def test_disconnect_asks_first_then_disconnects(admin_client_, account, amocrm_mock):
    amocrm_mock.delete(f"{API}/webhooks", status=204, body=b"")
    response, _ = press(admin_client_, account, "disconnect")
    assert response.status_code == 200 and "Disconnect?" in response.content.decode()
    assert Account.objects.get(pk=account.pk).state == Account.State.CONNECTED
    response, messages = press(admin_client_, account, "disconnect", confirmed="yes")
    assert response.status_code == 302 and "Disconnected" in messages[0]
    assert Account.objects.get(pk=account.pk).state == Account.State.NOT_CONNECTED
    assert not Token.objects.filter(account=account).exists()


def test_rotate_webhook_key_asks_first_then_gives_a_new_key(admin_client_, account, amocrm_mock):
    amocrm_mock.get(f"{API}/webhooks", status=204, body=b"")
    amocrm_mock.post(f"{API}/webhooks", json={"id": 1})
    amocrm_mock.delete(f"{API}/webhooks", status=204, body=b"")
    old = account.webhook_key
    assert press(admin_client_, account, "rotate_webhook_key")[0].status_code == 200
    assert Account.objects.get(pk=account.pk).webhook_key == old
    _, messages = press(admin_client_, account, "rotate_webhook_key", confirmed="yes")
    assert "New webhook URL, subscribed" in messages[0]
    assert Account.objects.get(pk=account.pk).webhook_key != old


def test_a_long_lived_token_pasted_in_the_admin_connects_the_account(admin_client_, amocrm_mock):
    account = make_account(state=Account.State.NOT_CONNECTED, host="")
    mock_metadata(amocrm_mock)
    url = reverse("admin:amocrm_account_credentials", args=[account.pk])
    assert "Long-lived token" in admin_client_.get(url).content.decode()
    response = admin_client_.post(url, {"host": "http://sandbox.test",
                                      "long_lived_token": "header.eyJleHAiOjQxMDI0NDQ4MDB9.sig"})
    assert response.status_code == 302, response.content.decode()[-3000:]
    account.refresh_from_db()
    assert account.state == Account.State.CONNECTED and account.token.long_lived


def test_the_credentials_form_wants_exactly_one_of_code_and_token(admin_client_):
    account = make_account(state=Account.State.NOT_CONNECTED, host="")
    url = reverse("admin:amocrm_account_credentials", args=[account.pk])
    page = admin_client_.post(url, {"host": "http://sandbox.test"}).content.decode()
    assert "Paste either an authorization code or a long-lived token" in page


def test_bulk_pause_and_resume_need_the_pause_permission(client, django_user_model, account,
                                                         django_capture_on_commit_callbacks):
    changelist = reverse("admin:amocrm_account_changelist")
    client.force_login(user_with(django_user_model, "view_account", "change_account"))
    assert "action_pause_sending" not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "action_pause_sending", "_selected_action": [account.pk]})
    assert Account.objects.get(pk=account.pk).sending_paused_at is None

    client.force_login(user_with(django_user_model, "view_account", "pause_account", username="operator"))
    assert "action_pause_sending" in client.get(changelist).content.decode()
    client.post(changelist, {"action": "action_pause_sending", "_selected_action": [account.pk]})
    assert Account.objects.get(pk=account.pk).sending_paused_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        client.post(changelist, {"action": "action_resume_sending", "_selected_action": [account.pk]})
    assert Account.objects.get(pk=account.pk).sending_paused_at is None
    assert "leads.tasks.push_account_leads" in queued_task_names()

