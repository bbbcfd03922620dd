"""The lead admin at volume: the search by input shape on indexes, filters from recent rows, capped counts."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leads.admin_search import lead_search
from leads.models import Lead, LeadSource
from tests.leads.conftest import make_lead

pytestmark = pytest.mark.django_db

LEADS = reverse("admin:leads_lead_changelist")
SOURCES = reverse("admin:leads_leadsource_changelist")


@pytest.fixture
def people(source):
    """Ivan (+7 912 345-67-89, deal 5001), Olga (+7 916 111-22-33, an e-mail) and Petr (no phone, deal 777001)."""
    return {
        "ivan": make_lead(source, name="Ivan Petrov", phone="+79123456789", amocrm_deal_id=5001,
                          status=Lead.Status.SENT),
        "olga": make_lead(source, name="Olga Smirnova", phone="+79161112233", email="olga.s@mail.ru"),
        "petr": make_lead(source, name="Пётр Иванов", phone="", email="petr@yandex.ru", amocrm_deal_id=777001,
                          status=Lead.Status.SENT),
    }


def found(term: str) -> set[str]:
    return {lead.name for lead in lead_search(Lead.objects.all(), term)}


@pytest.mark.parametrize("typed", ["+7 (912) 345-67-89", "8 912 345 67 89", "89123456789", "+79123456789",
                                   "9123456789", "345-67-89", "6789", "(912) 345.67.89"])
def test_the_search_finds_a_phone_in_any_format_or_by_its_last_digits(people, typed):
    assert found(typed) == {"Ivan Petrov"}


@pytest.mark.parametrize(("typed", "names"), [
    ("olga.s@mail.ru", {"Olga Smirnova"}), ("OLGA.S@Mail.RU", {"Olga Smirnova"}), ("olga.s@", {"Olga Smirnova"}),
    ("petr@yandex.ru", {"Пётр Иванов"}), ("nobody@mail.ru", set()),
])
def test_the_search_finds_an_email_in_any_case_or_by_its_start(people, typed, names):
    assert found(typed) == names


def test_the_search_finds_a_deal_id(people):
    assert found("777001") == {"Пётр Иванов"}
    assert found("5001") == {"Ivan Petrov"}


def test_the_search_finds_a_name_by_its_start_in_any_case(people):
    assert found("olga") == {"Olga Smirnova"}
    assert found("пётр") == {"Пётр Иванов"}
    assert found("petr") == {"Пётр Иванов"}  # the start of an e-mail counts as well


def test_the_admin_search_box_uses_it_and_never_a_leading_wildcard(staff, people):
    with CaptureQueriesContext(connection) as queries:
        page = staff.get(LEADS, {"q": "8 (912) 345-67-89"}).content.decode()
    assert "Ivan Petrov" in page and "Olga Smirnova" not in page
    searched = [q["sql"] for q in queries.captured_queries if "REVERSE" in q["sql"]]
    assert searched and not any("LIKE '%" in sql or "UPPER(" in sql for sql in searched)


@pytest.mark.parametrize(("term", "index"), [
    ("345-67-89", "leads_lead_phone_tail_idx"), ("olga.s@mail.ru", "leads_lead_email_prefix_idx"),
    ("Olga", "leads_lead_name_prefix_idx"), ("777001", "leads_lead_deal_idx"),
])
def test_each_search_shape_can_run_on_its_index(people, term, index):
    """With sequential scans priced out, PostgreSQL answers each shape from its index (the expressions match).

    Unordered: on a table this small the planner may as well walk the created_at index for the list's order."""
    sql, params = lead_search(Lead.objects.order_by(), term).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan


def test_the_utm_filters_offer_the_values_of_recent_leads_and_filter(staff, source):
    make_lead(source, name="From google", utm_source="google", utm_campaign="spring")
    make_lead(source, name="From vk", utm_source="vk", utm_campaign="autumn")
    make_lead(source, name="Direct")
    response = staff.get(LEADS)
    filters = {spec.title: [choice["display"] for choice in spec.choices(response.context["cl"])]
               for spec in response.context["cl"].filter_specs}
    assert filters["UTM source"][1:] == ["google", "vk"]  # after "All"; no empty value
    assert filters["UTM campaign"][1:] == ["autumn", "spring"]
    page = staff.get(LEADS, {"utm_campaign": "autumn"}).content.decode()
    assert "From vk" in page and "From google" not in page


def test_the_list_runs_no_distinct_and_no_uncapped_count(staff, source):
    for index in range(3):
        make_lead(source, name=f"Lead {index}", utm_source="google")
    for query in ({}, {"status__exact": "pending"}, {"q": "Lead"}, {"created_at__year": timezone.now().year}):
        with CaptureQueriesContext(connection) as queries:
            assert staff.get(LEADS, query).status_code == 200
        sqls = [q["sql"] for q in queries.captured_queries]
        counts = [sql for sql in sqls if "COUNT(" in sql.upper()]
        assert counts and all("LIMIT 1001" in sql for sql in counts), counts
        assert not [sql for sql in sqls if "DISTINCT" in sql.upper()]


def test_the_source_list_counts_only_recent_leads_without_joining_every_lead(staff, source):
    make_lead(source)
    make_lead(source, created_at=timezone.now() - timedelta(days=40))
    LeadSource.objects.create(account=source.account, name="Quiet form")
    with CaptureQueriesContext(connection) as queries:
        page = staff.get(SOURCES).content.decode()
    # The theme's cells: <td class="field-lead_count …" data-label="…">1</td>.
    assert re.search(r'<td class="field-lead_count\b[^>]*>1</td>', page)
    assert re.search(r'<td class="field-lead_count\b[^>]*>0</td>', page)
    assert not [q["sql"] for q in queries.captured_queries if "JOIN \"leads_lead\"" in q["sql"]]


def test_the_list_selects_no_long_texts_and_its_queries_do_not_grow_with_the_rows(staff, source):
    make_lead(source, name="First", message="Перезвоните " * 300, fields={"city": "Москва"}, utm_source="google")

    def list_queries() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert staff.get(LEADS).status_code == 200
        return [q["sql"] for q in queries.captured_queries]

    few = list_queries()
    for index in range(5):
        make_lead(source, name=f"Lead {index}", message="Hello", amocrm_deal_id=9000 + index,
                  status=Lead.Status.SENT)
    many = list_queries()
    assert len(many) == len(few)  # no column reads a deferred field row by row
    listed = [sql for sql in many if 'FROM "leads_lead"' in sql and '"leads_lead"."name"' in sql]
    assert listed and not [sql for sql in listed if '"leads_lead"."message"' in sql or '"leads_lead"."fields"' in sql]
