"""Fixtures for lead tests: the account's cached metadata, a source, leads, and reading amoCRM calls and the queue.

The account and amoCRM's mocked HTTP are tests/conftest.py's `account` and `amocrm_mock`.
"""

import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from amocrm.models import Account, AmoUser, CustomField, Pipeline, Stage
from config.breaker import redis_breaker
from leads.models import Lead, LeadSource
from leads.sources import lead_source_cache_clear
from tests.factories import API, TOKEN_URL  # noqa: F401 (the lead tests import them from here)

PIPELINE, FIRST_STAGE, SECOND_STAGE, USER = 777, 1002, 1003, 5
# The account has UTM_SOURCE/MEDIUM/CAMPAIGN tracking fields but no UTM_TERM, UTM_CONTENT or UTM_REFERRER.
UTM_SOURCE_FIELD, UTM_MEDIUM_FIELD, UTM_CAMPAIGN_FIELD = 900, 901, 902
CITY_FIELD, TYPE_FIELD, COUNT_FIELD, CONSENT_FIELD = 950, 951, 952, 953


@pytest.fixture(autouse=True)
def _fresh_source_cache():
    lead_source_cache_clear()
    yield
    lead_source_cache_clear()


@pytest.fixture(autouse=True)
def _closed_redis_breaker():
    """No test inherits an open circuit breaker (config.breaker) from another: it would skip Redis."""
    redis_breaker.succeeded()
    yield
    redis_breaker.succeeded()


def cache_metadata(account) -> None:
    pipeline = Pipeline.objects.create(account=account, amocrm_id=PIPELINE, name="Sales", sort=1, is_main=True)
    Stage.objects.create(pipeline=pipeline, amocrm_id=1001, name="Unsorted", sort=10, type=1)
    Stage.objects.create(pipeline=pipeline, amocrm_id=FIRST_STAGE, name="New", sort=20)
    Stage.objects.create(pipeline=pipeline, amocrm_id=SECOND_STAGE, name="Talks", sort=30)
    other = Pipeline.objects.create(account=account, amocrm_id=888, name="Partners", sort=2)
    Stage.objects.create(pipeline=other, amocrm_id=2002, name="Partner request", sort=20)
    AmoUser.objects.create(account=account, amocrm_id=USER, name="Anna", email="anna@example.com")
    AmoUser.objects.create(account=account, amocrm_id=6, name="Boris", email="boris@example.com")
    for amocrm_id, name, code in ((UTM_SOURCE_FIELD, "utm_source", "UTM_SOURCE"),
                                  (UTM_MEDIUM_FIELD, "utm_medium", "UTM_MEDIUM"),
                                  (UTM_CAMPAIGN_FIELD, "utm_campaign", "UTM_CAMPAIGN")):
        CustomField.objects.create(account=account, amocrm_id=amocrm_id, name=name, code=code, type="tracking_data")
    CustomField.objects.create(account=account, amocrm_id=CITY_FIELD, name="Город", type="text")
    CustomField.objects.create(account=account, amocrm_id=TYPE_FIELD, name="Тип клиента", type="select",
                               enums=[{"id": 1, "value": "Розница"}, {"id": 2, "value": "Опт"}])
    CustomField.objects.create(account=account, amocrm_id=COUNT_FIELD, name="Количество", type="numeric")
    CustomField.objects.create(account=account, amocrm_id=CONSENT_FIELD, name="Согласие", type="checkbox")


@pytest.fixture
def account_with_metadata(account):
    """`account` as after a metadata sync (pipelines, stages, users, fields cached), with its lead defaults set:
    pipeline PIPELINE, stage FIRST_STAGE, responsible USER. The same object the test's `account` is."""
    defaults = {"default_pipeline_id": PIPELINE, "default_status_id": FIRST_STAGE,
                "default_responsible_user_id": USER}
    Account.objects.filter(pk=account.pk).update(**defaults)
    for name, value in defaults.items():
        setattr(account, name, value)
    cache_metadata(account)
    return account


@pytest.fixture
def source(account_with_metadata):
    return LeadSource.objects.create(
        account=account_with_metadata, name="Landing", tags=["site"], allowed_origins=["https://shop.example"],
        success_url="https://shop.example/thanks", field_mapping={"city": CITY_FIELD, "kind": TYPE_FIELD},
    )


_sequence = iter(range(10**6))


def make_lead(source, **fields) -> Lead:
    """A pending lead as the intake stores it; each one a little newer than the last (push order)."""
    defaults = {
        "name": "Ivan", "phone": "+79123456789", "phone_raw": "8 (912) 345-67-89", "email": "",
        "created_at": timezone.now() - timedelta(minutes=10) + timedelta(milliseconds=next(_sequence)),
    }
    defaults.update(fields)
    return Lead.objects.create(source=source, account=source.account, **defaults)


def contact(contact_id: int, *, phones=(), emails=(), name="Someone") -> dict:
    """A contact as GET /api/v4/contacts returns it."""
    fields = []
    if phones:
        fields.append({"field_id": 801, "field_code": "PHONE", "field_name": "Phone", "field_type": "multitext",
                       "values": [{"value": value, "enum_code": "WORK"} for value in phones]})
    if emails:
        fields.append({"field_id": 802, "field_code": "EMAIL", "field_name": "Email", "field_type": "multitext",
                       "values": [{"value": value, "enum_code": "WORK"} for value in emails]})
    return {"id": contact_id, "name": name, "custom_fields_values": fields or None}


def contacts_answer(*items) -> dict:
    return {"_embedded": {"contacts": list(items)}}


def body_of(call):
    return json.loads(call.request.body)


def calls_to(rsps, path: str, method: str = "POST") -> list:
    return [call for call in rsps.calls
            if call.request.method == method and call.request.url.split("?")[0] == API + path]


def queued_tasks() -> list[dict]:
    """Messages waiting in this run's real Celery queue (Redis), decoded."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        raw = client.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1)
    finally:
        client.close()
    return [json.loads(item) for item in raw]


def queued_task_names() -> list[str]:
    return [message["headers"]["task"] for message in queued_tasks()]


def queued_task_args() -> list:
    import base64

    return [json.loads(base64.b64decode(message["body"]))[0] for message in queued_tasks()]
