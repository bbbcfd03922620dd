"""A webhook subscription that met a passing error (429, 5xx) is tried again by itself, shown as "will retry at"."""

import html
import json

import pytest
import redis
from django.conf import settings
from django.urls import reverse

from amocrm import services, tasks, webhook_retry
from amocrm.models import Account
from tests.factories import API, rate_limiter_reset

pytestmark = pytest.mark.django_db


def queued_subscribe_args() -> list:
    import base64

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        raw = [json.loads(item) for item in client.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1)]
    finally:
        client.close()
    return [json.loads(base64.b64decode(message["body"]))[0] for message in raw
            if message["headers"]["task"] == webhook_retry.TASK_NAME]


def test_a_429_is_retried_by_the_task_and_the_next_try_subscribes(account, amocrm_mock, client, django_user_model,
                                                                   django_capture_on_commit_callbacks):
    amocrm_mock.get(f"{API}/webhooks", status=429, body=b"")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.account_subscribe_webhook(account=account) is False
    account.refresh_from_db()
    assert account.webhook_retry_at is not None and account.webhook_subscribed_at is None
    assert "tried again by itself" in account.webhook_error
    assert queued_subscribe_args() == [[account.pk, 1]]

    client.force_login(django_user_model.objects.create_superuser("op", "op@example.com", "pw"))
    page = html.unescape(client.get(reverse("admin:amocrm_account_change", args=[account.pk])).content.decode())
    assert "Will retry at" in page and "amoCRM refused the webhook subscription." in page

    rate_limiter_reset(account.pk)  # the 429 paused the account's limiter; the task runs after the pause
    amocrm_mock.replace("GET", f"{API}/webhooks", status=204, body=b"")
    amocrm_mock.post(f"{API}/webhooks", json={"id": 1})
    assert tasks.subscribe_webhook(account.pk, 1) is True
    account.refresh_from_db()
    assert account.webhook_subscribed_at is not None
    assert account.webhook_retry_at is None and account.webhook_error == ""


def test_a_5xx_is_retried_but_a_permanent_refusal_is_not(account, amocrm_mock, django_capture_on_commit_callbacks):
    amocrm_mock.get(f"{API}/webhooks", status=502, body=b"")
    with django_capture_on_commit_callbacks(execute=True):
        services.account_subscribe_webhook(account=account)
    assert Account.objects.get(pk=account.pk).webhook_retry_at is not None
    amocrm_mock.replace("GET", f"{API}/webhooks", status=403, json={"title": "Forbidden", "detail": "no rights"})
    with django_capture_on_commit_callbacks(execute=True):
        services.account_subscribe_webhook(account=account, attempt=1)
    account.refresh_from_db()
    assert account.webhook_retry_at is None and "Add the webhook by hand" in account.webhook_error
    assert queued_subscribe_args() == [[account.pk, 1]]


def test_the_tries_stop_after_the_last_one(account, amocrm_mock, django_capture_on_commit_callbacks):
    amocrm_mock.get(f"{API}/webhooks", status=503, body=b"")
    with django_capture_on_commit_callbacks(execute=True):
        services.account_subscribe_webhook(account=account, attempt=webhook_retry.MAX_ATTEMPTS)
    account.refresh_from_db()
    assert account.webhook_retry_at is None and "Add the webhook by hand" in account.webhook_error
    assert queued_subscribe_args() == []


def test_the_task_leaves_an_account_that_is_subscribed_or_not_connected(account, amocrm_mock):
    Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
    assert tasks.subscribe_webhook(account.pk, 3) is False
    assert not amocrm_mock.calls


def test_a_second_failure_while_tries_are_waiting_queues_no_second_series(account, amocrm_mock,
                                                                         django_capture_on_commit_callbacks):
    amocrm_mock.get(f"{API}/webhooks", status=502, body=b"")
    with django_capture_on_commit_callbacks(execute=True):
        services.account_subscribe_webhook(account=account)
    first_retry_at = Account.objects.get(pk=account.pk).webhook_retry_at
    rate_limiter_reset(account.pk)
    with django_capture_on_commit_callbacks(execute=True):  # the operator clicks Subscribe again meanwhile
        assert services.account_subscribe_webhook(account=account) is False
    account.refresh_from_db()
    assert account.webhook_retry_at == first_retry_at and "tried again by itself" in account.webhook_error
    assert queued_subscribe_args() == [[account.pk, 1]]
