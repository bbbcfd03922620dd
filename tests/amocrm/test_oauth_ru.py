"""The OAuth callback page reads in Russian to a Russian-speaking operator: its refusals, with their reason, and
what went wrong after connecting, in plain words."""

import pytest
from django.urls import reverse

from amocrm import oauth
from tests.amocrm.test_oauth import TOKEN_ANSWER, _state_for
from tests.factories import API, TOKEN_URL, make_account

pytestmark = pytest.mark.django_db

CALLBACK = reverse("amocrm-oauth-callback")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("op", "op@example.com", "pw")


def callback(client, state: str) -> str:
    response = client.get(CALLBACK, {"code": "c", "state": state, "referer": "sandbox.test"},
                          HTTP_ACCEPT_LANGUAGE="ru")
    assert response.status_code == 400
    return response.content.decode()


def test_a_forged_state_is_explained_in_russian(client, staff, amocrm_mock):
    client.force_login(staff)
    html = callback(client, "forged")
    assert "Параметр state выдан не этим сайтом." in html
    assert "not one this site issued" not in html
    assert len(amocrm_mock.calls) == 0


def test_a_state_of_another_user_and_a_missing_state_are_explained_in_russian(client, staff, amocrm_mock):
    account = make_account(host="", state="not_connected")
    client.force_login(staff)
    html = callback(client, oauth.make_state(account=account, user_id=staff.pk + 1000))
    assert "Подключение начал другой пользователь, или сеанс завершился." in html
    assert "В запросе нет параметра state" in callback(client, "")
    assert len(amocrm_mock.calls) == 0


def test_a_used_state_is_explained_in_russian(client, staff, amocrm_mock):
    account = make_account(host="", state="not_connected")
    client.force_login(staff)
    state = oauth.make_state(account=account, user_id=staff.pk)
    oauth.read_state(state, user_id=staff.pk)  # the first use
    assert "Это разрешение уже использовано." in callback(client, state)


def test_an_expired_state_is_explained_in_russian(client, staff, amocrm_mock, monkeypatch):
    account = make_account(host="", state="not_connected")
    client.force_login(staff)
    state = oauth.make_state(account=account, user_id=staff.pk)
    monkeypatch.setattr(oauth, "STATE_MAX_AGE", -1)
    assert "Срок действия ссылки подключения истёк (она действует 20 минут)." in callback(client, state)


def test_a_metadata_failure_after_connecting_is_told_in_plain_words(client, staff, amocrm_mock):
    account = make_account(name="Shop", host="", state="not_connected")
    client.force_login(staff)
    state = _state_for(client, account)
    amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
    amocrm_mock.get(f"{API}/account", status=500, body=b"oops")
    amocrm_mock.get(f"{API}/webhooks", status=204, body=b"")
    amocrm_mock.post(f"{API}/webhooks", json={"id": 1})
    response = client.get(CALLBACK, {"code": "the-code", "state": state, "referer": "sandbox.test"},
                          HTTP_ACCEPT_LANGUAGE="ru")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Временный сбой на стороне amoCRM." in page
    assert "answered 500" not in page
