"""The intake benchmark's baseline view: served by the benchmark's own URLconf, never by the product."""

import json

import pytest
from django.test import override_settings
from django.urls import resolve

import bench.settings
import config.settings
from bench import run
from leads.models import Lead, LeadSource
from tests.factories import make_account


@pytest.fixture
def source(db):
    return LeadSource.objects.create(account=make_account(), name="Bench form")


def bare_post(client, source):
    payload = {"source": source.public_key, "name": "Иван", "phone": "8 (912) 345-67-89"}
    return client.post("/bench/bare-insert/", data=json.dumps(payload), content_type="application/json")


def test_the_benchmark_baseline_view_is_not_routed_by_the_product(client, source):
    response = bare_post(client, source)
    assert response.status_code == 404 and Lead.objects.count() == 0


@override_settings(ROOT_URLCONF="bench.urls")
def test_the_benchmark_urlconf_serves_the_bare_view_which_inserts_one_lead(client, source):
    response = bare_post(client, source)
    assert response.status_code == 201
    lead = Lead.objects.get()
    assert response.json() == {"id": str(lead.id), "status": lead.status}
    assert (lead.source, lead.name, lead.phone) == (source, "Иван", "8 (912) 345-67-89")


@override_settings(ROOT_URLCONF="bench.urls")
def test_the_benchmark_urlconf_keeps_every_product_url():
    assert resolve("/api/leads/").url_name == "lead-intake"
    assert resolve("/healthz/").url_name == "healthz"


def test_the_benchmark_settings_are_the_products_with_the_benchmark_urlconf():
    assert bench.settings.ROOT_URLCONF == "bench.urls"
    assert bench.settings.INSTALLED_APPS == config.settings.INSTALLED_APPS
    assert not hasattr(config.settings, "BENCH_BARE_VIEW")


def test_make_bench_runs_only_benchmarks_not_the_benchmark_site():
    names = run.benchmark_names()
    assert {"intake", "push", "prune", "webhook_ingest", "tracker"} <= set(names)
    assert not {"settings", "urls", "views", "run"} & set(names)
