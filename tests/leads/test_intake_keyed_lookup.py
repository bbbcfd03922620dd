"""The Idempotency-Key lookup of a keyed double click: one SELECT, no ORDER BY (bench/README.md, "Lead intake")."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leads.models import Lead

pytestmark = pytest.mark.django_db
URL = "/api/leads/"


def post_keyed(client, source, key):
    body = {"source": source.public_key, "name": "Иван", "phone": "8 (912) 345-67-89", "message": "Hello"}
    return client.post(URL, data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_keyed_double_click_costs_one_unordered_lookup_by_source_and_key(client, source):
    first = post_keyed(client, source, "key-1")
    with CaptureQueriesContext(connection) as queries:
        again = post_keyed(client, source, "key-2")  # the same submission within 10 s, under a new key
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert Lead.objects.count() == 1
    [lookup] = [query["sql"] for query in queries.captured_queries]
    # Ordered by created_at, the planner could walk that index over every lead to find no row.
    assert lookup.startswith("SELECT") and "ORDER BY" not in lookup and "LIMIT 1" in lookup
    assert '"idempotency_key" = ' in lookup and '"source_id" = ' in lookup


def test_a_repeated_key_still_answers_with_its_lead_and_refuses_another_submission(client, source):
    first = post_keyed(client, source, "key-1")
    assert post_keyed(client, source, "key-1").json() == first.json()
    other = client.post(URL, data=json.dumps({"source": source.public_key, "name": "Пётр", "phone": "+79120000001"}),
                        content_type="application/json", HTTP_IDEMPOTENCY_KEY="key-1")
    assert other.status_code == 422 and Lead.objects.count() == 1
