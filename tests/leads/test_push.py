"""Pushing leads to amoCRM: the exact batch JSON, verified contact dedup, UTMs, unsorted mode, notes and sync logs."""

import pytest
from responses import matchers

from amocrm.models import SyncLog
from leads import payloads
from leads.models import ContactMatch, Lead, LeadSource
from leads.push.engine import leads_push
from tests.leads.conftest import (
    API,
    CITY_FIELD,
    CONSENT_FIELD,
    COUNT_FIELD,
    FIRST_STAGE,
    PIPELINE,
    TYPE_FIELD,
    USER,
    UTM_CAMPAIGN_FIELD,
    UTM_MEDIUM_FIELD,
    UTM_SOURCE_FIELD,
    body_of,
    calls_to,
    contact,
    contacts_answer,
    make_lead,
)

pytestmark = pytest.mark.django_db


def complex_answer(*pairs):
    return [{"id": deal_id, "contact_id": contact_id, "company_id": None, "request_id": [str(index)],
             "merged": False} for index, (deal_id, contact_id) in enumerate(pairs)]


def notes_ok(amocrm_mock):
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})


def test_a_batch_is_one_complex_request_and_one_notes_request_with_the_exact_json(source, account, amocrm_mock):
    new = make_lead(source, name="Иван", phone="+79123456789", email="ivan@example.com", message="Перезвоните",
                    utm_source="google", utm_medium="cpc", utm_campaign="spring", utm_term="sofa",
                    utm_content="banner", referrer="https://google.com/", page_url="https://shop.example/sofa",
                    fields={"city": "Москва", "kind": "Опт", "size": "XL"})
    known = make_lead(source, name="Мария", phone="+79035550011", email="", message="")
    searched = make_lead(source, name="", phone="", email="petr@example.com", message="Счёт, пожалуйста")
    ContactMatch.objects.create(account=account, kind="phone", value="+79035550011", contact_id=7002)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"",
               match=[matchers.query_param_matcher({"query": "+79123456789", "limit": "50"})])
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(contact(7003, emails=["Petr@Example.com"])),
               match=[matchers.query_param_matcher({"query": "petr@example.com",
                                                                             "limit": "50"})])
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001), (5002, 7002), (5003, 7003)))
    notes_ok(amocrm_mock)

    outcome = leads_push(account_id=account.pk)

    assert (outcome.sent, outcome.failed, outcome.notes) == (3, 0, 2)
    [complex_call] = calls_to(amocrm_mock, "/leads/complex")
    assert body_of(complex_call) == [
        {
            "request_id": "0",
            "name": "Заявка с сайта: Иван",
            "pipeline_id": PIPELINE, "status_id": FIRST_STAGE, "responsible_user_id": USER,
            # UTM_TERM, UTM_CONTENT and UTM_REFERRER do not exist in this account: skipped.
            "custom_fields_values": [
                {"field_id": UTM_SOURCE_FIELD, "values": [{"value": "google"}]},
                {"field_id": UTM_MEDIUM_FIELD, "values": [{"value": "cpc"}]},
                {"field_id": UTM_CAMPAIGN_FIELD, "values": [{"value": "spring"}]},
                {"field_id": CITY_FIELD, "values": [{"value": "Москва"}]},
                {"field_id": TYPE_FIELD, "values": [{"value": "Опт"}]},
            ],
            "_embedded": {
                "tags": [{"name": "site"}, {"name": f"lead-{new.id.hex[:16]}"}],
                "contacts": [{"name": "Иван", "custom_fields_values": [
                    {"field_code": "PHONE", "values": [{"value": "+79123456789", "enum_code": "WORK"}]},
                    {"field_code": "EMAIL", "values": [{"value": "ivan@example.com", "enum_code": "WORK"}]},
                ]}],
            },
        },
        {
            "request_id": "1",
            "name": "Заявка с сайта: Мария",
            "pipeline_id": PIPELINE, "status_id": FIRST_STAGE, "responsible_user_id": USER,
            "_embedded": {"tags": [{"name": "site"}, {"name": f"lead-{known.id.hex[:16]}"}],
                          "contacts": [{"id": 7002}]},
        },
        {
            "request_id": "2",
            "name": "Заявка с сайта: petr@example.com",
            "pipeline_id": PIPELINE, "status_id": FIRST_STAGE, "responsible_user_id": USER,
            "_embedded": {"tags": [{"name": "site"}, {"name": f"lead-{searched.id.hex[:16]}"}],
                          "contacts": [{"id": 7003}]},
        },
    ]
    [notes_call] = calls_to(amocrm_mock, "/leads/notes")
    assert body_of(notes_call) == [
        {"entity_id": 5001, "note_type": "common", "params": {"text": (
            "Перезвоните\n\n"
            "Page: https://shop.example/sofa\n"
            "Referrer: https://google.com/\n"
            "UTM: utm_source=google, utm_medium=cpc, utm_campaign=spring, utm_term=sofa, utm_content=banner\n"
            "Form fields:\n  city: Москва\n  kind: Опт\n  size: XL\n\n"
            f"Website lead {new.id} from “Landing”.")}},
        {"entity_id": 5003, "note_type": "common", "params": {"text": (
            f"Счёт, пожалуйста\n\nWebsite lead {searched.id} from “Landing”.")}},
    ]
    # Exactly: two searches (the known phone needed none), one complex, one notes.
    assert len(amocrm_mock.calls) == 4
    for lead, deal_id, contact_id in ((new, 5001, 7001), (known, 5002, 7002), (searched, 5003, 7003)):
        lead.refresh_from_db()
        assert (lead.status, lead.amocrm_deal_id, lead.amocrm_contact_id) == (Lead.Status.SENT, deal_id, contact_id)
        assert lead.sent_at is not None and lead.write_attempted_at is None and not lead.note_pending
    # What we learned: the new contact by phone and email, the searched one by email.
    assert set(ContactMatch.objects.values_list("kind", "value", "contact_id")) == {
        ("phone", "+79123456789", 7001), ("email", "ivan@example.com", 7001),
        ("phone", "+79035550011", 7002), ("email", "petr@example.com", 7003)}


def test_every_amocrm_call_is_in_the_sync_log_of_the_leads_it_concerned(source, account, amocrm_mock):
    first = make_lead(source, phone="+79123456789", message="hi")
    second = make_lead(source, phone="+79123456700")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001), (5002, 7002)))
    notes_ok(amocrm_mock)
    leads_push(account_id=account.pk)
    assert sorted(first.sync_logs.values_list("operation", flat=True)) == [
        "contacts.search", "leads.complex", "notes.create"]
    assert sorted(second.sync_logs.values_list("operation", flat=True)) == ["contacts.search", "leads.complex"]
    assert SyncLog.objects.filter(operation="leads.complex").get().context["leads"] == [str(first.id),
                                                                                         str(second.id)]


def test_a_fuzzy_search_hit_with_another_number_is_not_the_same_person(source, account, amocrm_mock):
    lead = make_lead(source, phone="+79161234567")
    # amoCRM's search finds numbers that merely share digits: 8 916 123-45-60, or a +7 916… prefix.
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(
        contact(7100, phones=["8 916 123-45-60"]), contact(7101, phones=["+7 916 123 45 678"]),
        contact(7102, emails=["79161234567@mail.example"])))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7200)))
    leads_push(account_id=account.pk)
    deal = body_of(calls_to(amocrm_mock, "/leads/complex")[0])[0]
    assert "id" not in deal["_embedded"]["contacts"][0]  # a new contact, embedded in full
    lead.refresh_from_db()
    assert lead.amocrm_contact_id == 7200


def test_a_search_hit_is_reused_when_its_number_is_the_same_after_normalization(source, account, amocrm_mock):
    make_lead(source, phone="+79161234567")
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(
        contact(7100, phones=["+7 916 000-00-00"]), contact(7101, phones=["8 (916) 123-45-67", "+7 495 000-00-00"])))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7101)))
    leads_push(account_id=account.pk)
    assert body_of(calls_to(amocrm_mock, "/leads/complex")[0])[0]["_embedded"]["contacts"] == [{"id": 7101}]
    assert ContactMatch.objects.get(kind="phone").contact_id == 7101


def test_a_search_hit_matching_the_email_is_reused_when_searching_by_phone(source, account, amocrm_mock):
    make_lead(source, phone="+79161234567", email="anna@example.com")
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(contact(7300, phones=["+7 916 111-11-11"],
                                                               emails=["ANNA@example.com"])))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7300)))
    leads_push(account_id=account.pk)
    assert body_of(calls_to(amocrm_mock, "/leads/complex")[0])[0]["_embedded"]["contacts"] == [{"id": 7300}]
    assert set(ContactMatch.objects.values_list("kind", "contact_id")) == {("email", 7300)}


def test_when_two_hits_match_the_one_matching_phone_and_email_wins(source, account, amocrm_mock):
    make_lead(source, phone="+79161234567", email="anna@example.com")
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(
        contact(7001, phones=["+79161234567"]), contact(7002, phones=["+79161234567"], emails=["anna@example.com"])))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7002)))
    leads_push(account_id=account.pk)
    assert body_of(calls_to(amocrm_mock, "/leads/complex")[0])[0]["_embedded"]["contacts"] == [{"id": 7002}]


def test_an_empty_search_answer_204_means_a_new_contact(source, account, amocrm_mock):
    make_lead(source, phone="", email="new@example.com", name="")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    leads_push(account_id=account.pk)
    assert body_of(calls_to(amocrm_mock, "/leads/complex")[0])[0]["_embedded"]["contacts"] == [
        {"name": "new@example.com", "custom_fields_values": [
            {"field_code": "EMAIL", "values": [{"value": "new@example.com", "enum_code": "WORK"}]}]}]


def test_a_returning_person_known_locally_costs_no_search(source, account, amocrm_mock):
    ContactMatch.objects.create(account=account, kind="email", value="anna@example.com", contact_id=7555)
    make_lead(source, phone="", email="anna@example.com")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7555)))
    leads_push(account_id=account.pk)
    assert [call.request.url.split("?")[0] for call in amocrm_mock.calls] == [f"{API}/leads/complex"]


def test_two_leads_of_one_new_person_in_a_batch_create_one_contact(source, account, amocrm_mock):
    first = make_lead(source, phone="+79161234567", email="", message="first")
    other = make_lead(source, phone="+79035550000", message="someone else")
    # Same person by email only, written differently: still one person.
    second = make_lead(source, phone="+79161234567", email="", message="second")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001), (5002, 7002)))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5003, 7001)))
    notes_ok(amocrm_mock)
    outcome = leads_push(account_id=account.pk)
    first_call, second_call = calls_to(amocrm_mock, "/leads/complex")
    assert [deal["name"] for deal in body_of(first_call)] == ["Заявка с сайта: Ivan"] * 2
    assert [deal["_embedded"]["tags"][1]["name"] for deal in body_of(first_call)] == [
        payloads.marker_of(first), payloads.marker_of(other)]
    # The second lead of the person waited for the next batch and names the contact the first created.
    assert body_of(second_call) == [{**body_of(second_call)[0], "_embedded": {
        "tags": [{"name": "site"}, {"name": payloads.marker_of(second)}], "contacts": [{"id": 7001}]}}]
    assert outcome.deferred == 1 and outcome.sent == 3
    second.refresh_from_db()
    assert (second.status, second.amocrm_contact_id, second.attempts) == (Lead.Status.SENT, 7001, 1)
    # Two searches only: the deferred lead found the person in the local map.
    assert len(calls_to(amocrm_mock, "/contacts", "GET")) == 2


def test_two_leads_of_one_known_person_go_in_the_same_batch(source, account, amocrm_mock):
    make_lead(source, phone="+79161234567")
    make_lead(source, phone="+79161234567", email="x@example.com")
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(contact(7001, phones=["+79161234567"])))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001), (5002, 7001)))
    leads_push(account_id=account.pk)
    [call] = calls_to(amocrm_mock, "/leads/complex")
    assert [deal["_embedded"]["contacts"] for deal in body_of(call)] == [[{"id": 7001}], [{"id": 7001}]]
    assert len(calls_to(amocrm_mock, "/contacts", "GET")) == 1


def test_the_source_placement_tags_and_template_win_over_the_account_defaults(source, account, amocrm_mock):
    source.pipeline_id, source.status_id, source.responsible_user_id = 888, 2002, 6
    source.tags = ["партнёры", "site"]
    source.deal_name_template = "{source}: {name} / {utm_campaign} {unknown}"
    source.field_mapping = {"qty": COUNT_FIELD, "consent": CONSENT_FIELD, "message": CITY_FIELD, "kind": TYPE_FIELD}
    source.save()
    make_lead(source, name="Олег", utm_campaign="autumn", message="Казань",
              fields={"qty": "1 200,5", "consent": "yes", "kind": "Неизвестный тип"})
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    notes_ok(amocrm_mock)
    leads_push(account_id=account.pk)
    deal = body_of(calls_to(amocrm_mock, "/leads/complex")[0])[0]
    assert (deal["name"], deal["pipeline_id"], deal["status_id"], deal["responsible_user_id"]) == (
        "Landing: Олег / autumn", 888, 2002, 6)
    assert [tag["name"] for tag in deal["_embedded"]["tags"]][:2] == ["партнёры", "site"]
    # A value the field cannot take ("Неизвестный тип" is no option) is left to the note, not sent to fail.
    assert deal["custom_fields_values"] == [
        {"field_id": UTM_CAMPAIGN_FIELD, "values": [{"value": "autumn"}]},
        {"field_id": COUNT_FIELD, "values": [{"value": "1200.5"}]},
        {"field_id": CONSENT_FIELD, "values": [{"value": True}]},
        {"field_id": CITY_FIELD, "values": [{"value": "Казань"}]},
    ]


def test_utm_fields_the_account_lacks_are_skipped(source, account, amocrm_mock):
    from amocrm.models import CustomField

    CustomField.objects.filter(account=account, code__in=["UTM_MEDIUM", "UTM_CAMPAIGN"]).delete()
    make_lead(source, utm_source="ya", utm_medium="cpc", utm_campaign="c1", utm_term="t", utm_content="x",
              referrer="https://ya.ru/")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    notes_ok(amocrm_mock)
    leads_push(account_id=account.pk)
    deal = body_of(calls_to(amocrm_mock, "/leads/complex")[0])[0]
    assert deal["custom_fields_values"] == [{"field_id": UTM_SOURCE_FIELD, "values": [{"value": "ya"}]}]
    # Nothing is lost: the note carries every UTM.
    note = body_of(calls_to(amocrm_mock, "/leads/notes")[0])[0]["params"]["text"]
    assert "utm_medium=cpc, utm_campaign=c1, utm_term=t, utm_content=x" in note and "Referrer: https://ya.ru/" in note


def test_a_lead_with_nothing_to_note_gets_no_note(source, account, amocrm_mock):
    make_lead(source, message="", fields={})
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    leads_push(account_id=account.pk)
    assert calls_to(amocrm_mock, "/leads/notes") == []
    assert Lead.objects.get().note_pending is False


def test_unsorted_mode_sends_one_incoming_leads_request_with_form_metadata(source, account, amocrm_mock):
    source.mode, source.form_id = LeadSource.Mode.UNSORTED, "landing-form"
    source.save()
    first = make_lead(source, name="Иван", phone="+79123456789", email="ivan@example.com", message="Позвоните",
                      utm_source="google", page_url="https://shop.example/sofa", referrer="https://google.com/",
                      ip="203.0.113.7")
    second = make_lead(source, name="", phone="+79035550000", page_url="", referrer="")
    amocrm_mock.post(f"{API}/leads/unsorted/forms", json={"_embedded": {"unsorted": [
        {"uid": "u-1", "request_id": "0", "_embedded": {"leads": [{"id": 6001}], "contacts": [{"id": 8001}]}},
        {"uid": "u-2", "request_id": "1", "_embedded": {"leads": [{"id": 6002}], "contacts": [{"id": 8002}]}},
    ]}})
    notes_ok(amocrm_mock)
    outcome = leads_push(account_id=account.pk)
    assert outcome.sent == 2
    # No contact search in unsorted mode: the manager sorts people out when accepting.
    assert [call.request.url.split("?")[0] for call in amocrm_mock.calls] == [f"{API}/leads/unsorted/forms",
                                                                       f"{API}/leads/notes"]
    [call] = calls_to(amocrm_mock, "/leads/unsorted/forms")
    sent_at = int(first.created_at.timestamp())
    assert body_of(call)[0] == {
        "request_id": "0",
        "source_uid": str(first.id),
        "source_name": "Landing",
        "created_at": sent_at,
        "metadata": {"form_id": "landing-form", "form_name": "Landing", "form_page": "https://shop.example/sofa",
                     "form_sent_at": sent_at, "ip": "203.0.113.7", "referer": "https://google.com/"},
        "_embedded": {
            "leads": [{"name": "Заявка с сайта: Иван",
                       "custom_fields_values": [{"field_id": UTM_SOURCE_FIELD, "values": [{"value": "google"}]}],
                       "_embedded": {"tags": [{"name": "site"}, {"name": payloads.marker_of(first)}]}}],
            "contacts": [{"name": "Иван", "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": "+79123456789", "enum_code": "WORK"}]},
                {"field_code": "EMAIL", "values": [{"value": "ivan@example.com", "enum_code": "WORK"}]}]}],
        },
        "pipeline_id": PIPELINE,
    }
    assert body_of(call)[1]["metadata"]["form_page"] == "http://testserver"  # SITE_URL when the page is unknown
    assert "ip" not in body_of(call)[1]["metadata"]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.amocrm_deal_id, first.amocrm_contact_id, first.amocrm_unsorted_uid) == (
        Lead.Status.SENT, 6001, 8001, "u-1")
    assert (second.amocrm_deal_id, second.amocrm_unsorted_uid) == (6002, "u-2")
    assert body_of(calls_to(amocrm_mock, "/leads/notes")[0]) == [
        {"entity_id": 6001, "note_type": "common", "params": {"text": (
            "Позвоните\n\nPage: https://shop.example/sofa\nReferrer: https://google.com/\nUTM: utm_source=google\n\n"
            f"Website lead {first.id} from “Landing”.")}}]
    assert not ContactMatch.objects.exists()


def test_a_batch_takes_at_most_50_leads_oldest_first(source, account, amocrm_mock):
    leads = [make_lead(source, phone=f"+7916000{index:04d}") for index in range(55)]
    ContactMatch.objects.bulk_create([ContactMatch(account=account, kind="phone", value=lead.phone,
                                                   contact_id=9000 + index) for index, lead in enumerate(leads)])
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer(*[(5000 + i, 9000 + i) for i in range(50)]))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer(*[(6000 + i, 9050 + i) for i in range(5)]))
    outcome = leads_push(account_id=account.pk)
    first, second = calls_to(amocrm_mock, "/leads/complex")
    assert len(body_of(first)) == 50 and len(body_of(second)) == 5
    assert body_of(first)[0]["_embedded"]["contacts"] == [{"id": 9000}]
    assert outcome.sent == 55 and not outcome.more


def test_spam_failed_and_sent_leads_are_not_pushed(source, account, amocrm_mock):
    make_lead(source, status=Lead.Status.SPAM)
    make_lead(source, status=Lead.Status.FAILED)
    make_lead(source, status=Lead.Status.SENT, amocrm_deal_id=1)
    outcome = leads_push(account_id=account.pk)
    assert len(amocrm_mock.calls) == 0 and outcome.sent == 0
