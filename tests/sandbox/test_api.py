"""API v4 endpoints answer in amoCRM's shapes: HAL pages, 204 with no body, deals, contacts, complex, unsorted."""

import pytest

PHONE = "+79161234567"


def contact(name: str, phone: str | None = None, email: str | None = None, **extra) -> dict:
    fields = []
    if phone:
        fields.append({"field_code": "PHONE", "values": [{"value": phone, "enum_code": "WORK"}]})
    if email:
        fields.append({"field_code": "EMAIL", "values": [{"value": email, "enum_code": "WORK"}]})
    return {"name": name, "custom_fields_values": fields or None, **extra}


def field_id(api, code: str) -> int:
    fields = api.get("/api/v4/leads/custom_fields", params={"limit": 250}).json()["_embedded"]["custom_fields"]
    return next(item["id"] for item in fields if item["code"] == code)


def test_every_answer_carries_an_x_request_id(api):
    answers = [api.get("/api/v4/account"), api.get("/api/v4/contacts", params={"query": "nobody"}),
               api.get("/api/v4/nowhere")]

    assert all(answer.headers.get("X-Request-Id") for answer in answers)


def test_the_account_describes_itself(sandbox, api):
    answer = api.get("/api/v4/account")

    assert answer.headers["Content-Type"] == "application/hal+json"
    body = answer.json()
    account = sandbox.accounts[0]
    assert (body["id"], body["subdomain"], body["currency"]) == (account.account_id, "sandbox", "RUB")


def test_every_pipeline_has_the_unsorted_stage_won_and_lost(api):
    pipelines = api.get("/api/v4/leads/pipelines").json()["_embedded"]["pipelines"]

    assert len(pipelines) >= 2
    assert [pipeline["is_main"] for pipeline in pipelines].count(True) == 1
    for pipeline in pipelines:
        statuses = pipeline["_embedded"]["statuses"]
        assert [status["type"] for status in statuses].count(1) == 1
        assert {142, 143} <= {status["id"] for status in statuses}
        assert len(statuses) >= 4


def test_users_are_listed(api):
    users = api.get("/api/v4/users").json()["_embedded"]["users"]

    assert len(users) >= 2
    assert all({"id", "name", "email"} <= set(user) for user in users)


def test_deal_fields_include_tracking_fields_and_the_second_account_lacks_utm_term(api, second_api):
    first = api.get("/api/v4/leads/custom_fields").json()["_embedded"]["custom_fields"]
    second = second_api.get("/api/v4/leads/custom_fields").json()["_embedded"]["custom_fields"]

    utm = {"UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_TERM", "UTM_CONTENT", "UTM_REFERRER"}
    ids = {"GCLID", "YCLID", "FBCLID", "GCLIENTID", "_YM_UID", "ROISTAT"}
    assert {item["code"] for item in first if item["type"] == "tracking_data"} == utm | ids
    assert {item["code"] for item in second if item["type"] == "tracking_data"} == (utm | ids) - {"UTM_TERM"}
    assert all(item["group_id"] == "statistic" for item in first if item["type"] == "tracking_data")
    assert any(item["type"] == "select" and item["enums"] for item in first)
    assert not {item["id"] for item in first} & {item["id"] for item in second}


def test_custom_fields_are_paginated_with_next_links_and_204_past_the_end(api):
    first = api.get("/api/v4/leads/custom_fields", params={"limit": 5})
    second = api.session.get(first.json()["_links"]["next"]["href"], timeout=5)
    total = len(api.get("/api/v4/leads/custom_fields", params={"limit": 250}).json()["_embedded"]["custom_fields"])
    past_end = api.get("/api/v4/leads/custom_fields", params={"limit": 5, "page": total // 5 + 2})

    assert len(first.json()["_embedded"]["custom_fields"]) == 5
    assert second.json()["_page"] == 2
    assert past_end.status_code == 204
    assert past_end.content == b""


def test_contact_search_over_matches_on_digits_and_the_caller_must_verify(api):
    api.post("/api/v4/contacts", json=[contact("Ivan", phone=PHONE), contact("Olga", phone="+7 916 765-43-21"),
                                       contact("Anna", email="anna@example.com")])

    def names(query: str) -> list[str]:
        answer = api.get("/api/v4/contacts", params={"query": query})
        return sorted(item["name"] for item in answer.json()["_embedded"]["contacts"]) if answer.content else []

    assert names("+7 916") == ["Ivan", "Olga"]
    assert names("89161234567") == ["Ivan"]
    assert names("+7 (916) 123-45-67") == ["Ivan"]
    assert names("anna@example") == ["Anna"]
    assert names("ivan") == ["Ivan"]


def test_a_search_without_hits_is_204_with_an_empty_body(api):
    api.post("/api/v4/contacts", json=[contact("Ivan", phone=PHONE)])

    answer = api.get("/api/v4/contacts", params={"query": "+7 999 000-00-00"})

    assert answer.status_code == 204
    assert answer.content == b""
    assert answer.headers["Content-Length"] == "0"


def test_a_contact_reads_back_with_its_values_as_strings_and_enum_codes(api):
    created = api.post("/api/v4/contacts", json=[contact("Ivan", phone=PHONE, request_id="form-1")]).json()
    item = created["_embedded"]["contacts"][0]

    fetched = api.get(f"/api/v4/contacts/{item['id']}").json()

    assert item["request_id"] == "form-1"
    phone = next(value for value in fetched["custom_fields_values"] if value["field_code"] == "PHONE")
    assert phone["values"][0]["value"] == PHONE
    assert phone["values"][0]["enum_code"] == "WORK"


def test_an_unknown_id_is_204(api):
    assert api.get("/api/v4/contacts/1").status_code == 204
    assert api.get("/api/v4/leads/1").status_code == 204


def test_a_deal_without_a_stage_lands_in_the_first_stage_of_the_main_pipeline(api):
    main = next(item for item in api.get("/api/v4/leads/pipelines").json()["_embedded"]["pipelines"] if item["is_main"])
    first_stage = next(status for status in main["_embedded"]["statuses"] if status["type"] == 0)

    deal_id = api.post("/api/v4/leads", json=[{"name": "Order", "price": 1500}]).json()["_embedded"]["leads"][0]["id"]
    deal = api.get(f"/api/v4/leads/{deal_id}").json()

    assert (deal["pipeline_id"], deal["status_id"]) == (main["id"], first_stage["id"])
    assert deal["price"] == 1500
    assert deal["closed_at"] is None
    assert deal["custom_fields_values"] is None
    assert deal["created_at"] == deal["updated_at"]


def test_a_deal_reads_back_with_its_contact_tags_and_fields(api):
    created_contact = api.post("/api/v4/contacts", json=[contact("Ivan", phone=PHONE)]).json()
    contact_id = created_contact["_embedded"]["contacts"][0]["id"]
    created = api.post("/api/v4/leads", json=[{
        "name": "Order", "request_id": "lead-7",
        "custom_fields_values": [{"field_code": "UTM_SOURCE", "values": [{"value": "google"}]}],
        "_embedded": {"tags": [{"name": "website"}], "contacts": [{"id": contact_id}]},
    }]).json()["_embedded"]["leads"][0]

    deal = api.get(f"/api/v4/leads/{created['id']}", params={"with": "contacts"}).json()

    assert created["request_id"] == "lead-7"
    assert deal["_embedded"]["contacts"] == [
        {"id": contact_id, "is_main": True, "_links": deal["_embedded"]["contacts"][0]["_links"]}]
    assert [tag["name"] for tag in deal["_embedded"]["tags"]] == ["website"]
    assert deal["custom_fields_values"][0]["values"] == [{"value": "google"}]


def test_moving_a_deal_to_won_sets_closed_at_and_leaving_clears_it(api, clock):
    deal_id = api.post("/api/v4/leads", json=[{"name": "Order"}]).json()["_embedded"]["leads"][0]["id"]
    clock.advance(60)

    api.patch("/api/v4/leads", json=[{"id": deal_id, "status_id": 142, "price": 9000}])
    won = api.get(f"/api/v4/leads/{deal_id}").json()
    api.patch(f"/api/v4/leads/{deal_id}", json={"status_id": 143})
    lost = api.get(f"/api/v4/leads/{deal_id}").json()

    assert (won["status_id"], won["price"], won["closed_at"]) == (142, 9000, int(clock.now))
    assert won["updated_at"] > won["created_at"]
    assert lost["status_id"] == 143


def test_a_deal_moves_to_another_pipeline_by_status_alone(api):
    pipelines = api.get("/api/v4/leads/pipelines").json()["_embedded"]["pipelines"]
    other = next(item for item in pipelines if not item["is_main"])
    stage = next(status for status in other["_embedded"]["statuses"] if status["type"] == 0)
    deal_id = api.post("/api/v4/leads", json=[{"name": "Order"}]).json()["_embedded"]["leads"][0]["id"]

    api.patch(f"/api/v4/leads/{deal_id}", json={"status_id": stage["id"]})

    assert api.get(f"/api/v4/leads/{deal_id}").json()["pipeline_id"] == other["id"]


def test_deals_are_listed_by_updated_at_with_next_links_and_204_at_the_end(api, clock):
    api.post("/api/v4/leads", json=[{"name": f"old {index}"} for index in range(3)])
    clock.advance(100)
    since = int(clock.now)
    api.post("/api/v4/leads", json=[{"name": f"new {index}"} for index in range(5)])

    names, url, pages = [], None, 0
    params = {"filter[updated_at][from]": since, "limit": 2}
    answer = api.get("/api/v4/leads", params=params)
    while answer.status_code == 200:
        pages += 1
        body = answer.json()
        names += [deal["name"] for deal in body["_embedded"]["leads"]]
        url = body["_links"].get("next", {}).get("href")
        if url is None:
            break
        answer = api.session.get(url, timeout=5)
    past_end = api.get("/api/v4/leads", params={**params, "page": 4})

    assert names == [f"new {index}" for index in range(5)]
    assert pages == 3
    assert past_end.status_code == 204
    assert past_end.content == b""


def test_deals_are_found_by_a_marker_in_a_field_or_a_tag(api):
    marker = field_id(api, "UTM_CONTENT")
    api.post("/api/v4/leads", json=[
        {"name": "A", "custom_fields_values": [{"field_id": marker, "values": [{"value": "lead-5b1c"}]}]},
        {"name": "B", "_embedded": {"tags": [{"name": "lead-77aa"}]}},
        {"name": "C"},
    ])

    def names(query: str) -> list[str]:
        answer = api.get("/api/v4/leads", params={"query": query})
        return [deal["name"] for deal in answer.json()["_embedded"]["leads"]] if answer.content else []

    assert names("lead-5b1c") == ["A"]
    assert names("lead-77aa") == ["B"]
    assert names("lead-0000") == []


def test_complex_creates_the_deal_with_its_contact_and_answers_a_plain_array(api):
    existing = api.post("/api/v4/contacts", json=[contact("Olga", phone="+79160000001")]).json()
    existing_id = existing["_embedded"]["contacts"][0]["id"]

    answer = api.post("/api/v4/leads/complex", json=[
        {"name": "New person", "_embedded": {"contacts": [contact("Ivan", phone=PHONE)]}, "request_id": "a"},
        {"name": "Known person", "_embedded": {"contacts": [{"id": existing_id}], "companies": [{"name": "ACME"}]}},
    ])

    assert answer.status_code == 200
    created = answer.json()
    assert isinstance(created, list)
    assert set(created[0]) == {"id", "contact_id", "company_id", "request_id", "merged"}
    assert created[0]["request_id"] == ["a"] and created[1]["request_id"] == ["1"]
    assert created[0]["merged"] is False
    assert created[1]["contact_id"] == existing_id and created[1]["company_id"]
    deal = api.get(f"/api/v4/leads/{created[0]['id']}", params={"with": "contacts"}).json()
    assert deal["_embedded"]["contacts"][0]["id"] == created[0]["contact_id"]


def test_complex_takes_at_most_fifty_deals_and_one_contact_each(api, control):
    too_many = api.post("/api/v4/leads/complex", json=[{"name": str(index)} for index in range(51)])
    two_contacts = api.post("/api/v4/leads/complex", json=[
        {"name": "x", "_embedded": {"contacts": [contact("a"), contact("b")]}}])

    assert too_many.status_code == 400
    assert two_contacts.status_code == 400
    assert two_contacts.json()["validation-errors"][0]["errors"][0]["path"] == "_embedded.contacts"
    assert api.post("/api/v4/leads/complex", json=[{"name": str(index)} for index in range(50)]).status_code == 200
    assert len(control.leads()) == 50


def test_notes_attach_to_deals(api, control):
    deal_id = api.post("/api/v4/leads", json=[{"name": "Order"}]).json()["_embedded"]["leads"][0]["id"]

    answer = api.post("/api/v4/leads/notes", json=[
        {"entity_id": deal_id, "note_type": "common", "params": {"text": "Call me after 6"}}])

    assert answer.json()["_embedded"]["notes"][0]["entity_id"] == deal_id
    assert control.notes()[0]["params"] == {"text": "Call me after 6"}


def test_a_note_needs_an_existing_deal_and_a_text(api):
    answer = api.post("/api/v4/leads/notes", json=[{"entity_id": 1, "note_type": "common", "params": {}}])

    paths = {error["path"] for error in answer.json()["validation-errors"][0]["errors"]}
    assert paths == {"entity_id", "params.text"}


def test_an_unsorted_form_lead_lands_in_the_unsorted_stage_with_its_contact(api, control):
    answer = api.post("/api/v4/leads/unsorted/forms", json=[{
        "source_uid": "site-form", "source_name": "Website", "request_id": "r1",
        "metadata": {"form_id": "contact", "form_name": "Contact us", "form_page": "https://shop.test/",
                     "form_sent_at": 1_700_000_000, "ip": "203.0.113.5"},
        "_embedded": {"leads": [{"name": "From the site", "price": 100}], "contacts": [contact("Ivan", phone=PHONE)]},
    }])

    item = answer.json()["_embedded"]["unsorted"][0]
    deal = api.get(f"/api/v4/leads/{item['_embedded']['leads'][0]['id']}").json()
    unsorted_stage = next(
        status["id"] for pipeline in api.get("/api/v4/leads/pipelines").json()["_embedded"]["pipelines"]
        if pipeline["is_main"] for status in pipeline["_embedded"]["statuses"] if status["type"] == 1)
    assert item["uid"] and item["request_id"] == "r1"
    assert deal["status_id"] == unsorted_stage
    assert len(item["_embedded"]["contacts"]) == 1
    assert control.unsorted()[0]["metadata"]["form_name"] == "Contact us"


def test_an_unsorted_form_needs_its_metadata(api):
    answer = api.post("/api/v4/leads/unsorted/forms", json=[{"source_uid": "s", "source_name": "n", "metadata": {}}])

    paths = {error["path"] for error in answer.json()["validation-errors"][0]["errors"]}
    assert {"metadata.form_id", "metadata.form_name", "metadata.form_page", "metadata.form_sent_at"} <= paths


def test_webhook_subscriptions_are_listed_replaced_and_deleted(api):
    assert api.get("/api/v4/webhooks").status_code == 204
    destination = "https://shop.test/api/webhooks/amocrm/key/"

    api.post("/api/v4/webhooks", json={"destination": destination, "settings": ["add_lead"]})
    api.post("/api/v4/webhooks", json={"destination": destination, "settings": ["status_lead", "update_lead"]})
    listed = api.get("/api/v4/webhooks").json()["_embedded"]["webhooks"]
    deleted = api.delete("/api/v4/webhooks", json={"destination": destination})

    assert [(item["destination"], item["settings"]) for item in listed] == [
        (destination, ["status_lead", "update_lead"])]
    assert deleted.status_code == 204
    assert api.get("/api/v4/webhooks").status_code == 204


@pytest.mark.parametrize("settings", [[], ["add_deal"], "add_lead"])
def test_a_webhook_subscription_needs_known_settings(api, settings):
    answer = api.post("/api/v4/webhooks", json={"destination": "https://shop.test/hook", "settings": settings})

    assert answer.status_code == 400


def test_unknown_paths_are_404_and_wrong_methods_405(api):
    assert api.get("/api/v4/companies/catalogs").status_code == 404
    assert api.delete("/api/v4/leads/1").status_code == 405


def test_a_pipeline_alone_moves_a_deal_to_its_first_stage_unless_it_is_already_there(api):
    pipelines = api.get("/api/v4/leads/pipelines").json()["_embedded"]["pipelines"]
    main, other = (next(item for item in pipelines if item["is_main"] is flag) for flag in (True, False))
    deal_id = api.post("/api/v4/leads", json=[{"name": "x"}]).json()["_embedded"]["leads"][0]["id"]
    api.patch(f"/api/v4/leads/{deal_id}", json={"status_id": 142})

    api.patch(f"/api/v4/leads/{deal_id}", json={"pipeline_id": main["id"], "name": "renamed"})
    unchanged = api.get(f"/api/v4/leads/{deal_id}").json()
    api.patch(f"/api/v4/leads/{deal_id}", json={"pipeline_id": other["id"]})
    moved = api.get(f"/api/v4/leads/{deal_id}").json()

    assert (unchanged["pipeline_id"], unchanged["status_id"]) == (main["id"], 142)
    first_stage = next(status["id"] for status in other["_embedded"]["statuses"] if status["type"] == 0)
    assert (moved["pipeline_id"], moved["status_id"]) == (other["id"], first_stage)
