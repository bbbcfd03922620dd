"""Write requests are validated like amoCRM's: whole batches rejected, errors keyed by request_id and path."""

import pytest


def errors_of(answer) -> list[dict]:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert (body["title"], body["status"], body["detail"]) == ("Bad Request", 400, "Request validation failed")
    return body["validation-errors"]


def only_error(answer) -> dict:
    failures = errors_of(answer)
    assert len(failures) == 1 and len(failures[0]["errors"]) == 1, failures
    return {"request_id": failures[0]["request_id"], **failures[0]["errors"][0]}


@pytest.mark.parametrize("path", ["/api/v4/leads", "/api/v4/contacts", "/api/v4/leads/complex",
                                  "/api/v4/leads/notes", "/api/v4/leads/unsorted/forms"])
def test_write_endpoints_require_an_array(api, path):
    answer = api.post(path, json={"name": "not in an array"})

    assert answer.status_code == 400


def test_more_than_250_deals_in_one_request_are_rejected(api, control):
    assert api.post("/api/v4/leads", json=[{"name": str(index)} for index in range(251)]).status_code == 400
    assert control.leads() == []
    assert api.post("/api/v4/leads", json=[{"name": str(index)} for index in range(250)]).status_code == 200


def test_an_unknown_field_id_is_not_supported_and_points_at_the_element(api):
    answer = api.post("/api/v4/leads", json=[
        {"name": "fine"},
        {"name": "bad", "custom_fields_values": [{"field_id": 123, "values": [{"value": "x"}]}]},
    ])

    error = only_error(answer)
    assert error["request_id"] == "1"
    assert error["code"] == "NotSupportedChoice"
    assert error["path"] == "custom_fields_values.0.field_id"


def test_the_clients_request_id_names_the_failing_element(api):
    answer = api.post("/api/v4/leads", json=[
        {"name": "bad", "request_id": "lead-42", "custom_fields_values": [{"field_code": "NO_SUCH_CODE",
                                                                           "values": [{"value": "x"}]}]},
    ])

    error = only_error(answer)
    assert error["request_id"] == "lead-42"
    assert error["path"] == "custom_fields_values.0.field_code"


def test_a_rejected_batch_creates_nothing(api, control):
    api.post("/api/v4/leads", json=[{"name": "fine"}, {"name": "bad", "price": "100"}])

    assert control.leads() == []


@pytest.mark.parametrize("enum_code", ["MOBILE", "PRIV", "work"])
def test_a_phone_enum_code_outside_amocrms_list_is_rejected(api, enum_code):
    answer = api.post("/api/v4/contacts", json=[{"name": "Ivan", "custom_fields_values": [
        {"field_code": "PHONE", "values": [{"value": "+79161234567", "enum_code": enum_code}]}]}])

    error = only_error(answer)
    assert error["code"] == "NotSupportedChoice"
    assert error["path"] == "custom_fields_values.0.values.0.enum_code"


@pytest.mark.parametrize("phone_code, email_code", [("WORK", "WORK"), ("WORKDD", "PRIV"), ("MOB", "OTHER"),
                                                    ("FAX", "WORK"), ("HOME", "WORK"), ("OTHER", "WORK")])
def test_every_documented_enum_code_is_accepted(api, phone_code, email_code):
    answer = api.post("/api/v4/contacts", json=[{"name": "Ivan", "custom_fields_values": [
        {"field_code": "PHONE", "values": [{"value": "+79161234567", "enum_code": phone_code}]},
        {"field_code": "EMAIL", "values": [{"value": "ivan@example.com", "enum_code": email_code}]}]}])

    assert answer.status_code == 200


@pytest.mark.parametrize("item, path, code", [
    ({"price": "100"}, "price", "InvalidType"),
    ({"name": 5}, "name", "InvalidType"),
    ({"status_id": 1}, "status_id", "NotSupportedChoice"),
    ({"pipeline_id": 1}, "pipeline_id", "NotSupportedChoice"),
    ({"responsible_user_id": 1}, "responsible_user_id", "NotSupportedChoice"),
    ({"custom_fields_values": {"field_code": "UTM_SOURCE"}}, "custom_fields_values", "InvalidType"),
    ({"custom_fields_values": [{"field_code": "UTM_SOURCE", "values": "google"}]},
     "custom_fields_values.0.values", "InvalidType"),
    ({"custom_fields_values": [{"field_code": "UTM_SOURCE", "values": [{"value": 5}]}]},
     "custom_fields_values.0.values.0.value", "InvalidType"),
    ({"_embedded": {"contacts": [{"id": 1}]}}, "_embedded.contacts.0.id", "NotFound"),
    ({"_embedded": {"tags": ["website"]}}, "_embedded.tags.0", "InvalidType"),
])
def test_deal_fields_are_type_checked(api, item, path, code):
    error = only_error(api.post("/api/v4/leads", json=[{"name": "x", **item}]))

    assert (error["path"], error["code"]) == (path, code)


def test_select_values_must_be_one_of_the_enums(api):
    fields = api.get("/api/v4/leads/custom_fields").json()["_embedded"]["custom_fields"]
    select = next(item for item in fields if item["type"] == "select")
    wholesale = select["enums"][1]

    by_text = api.post("/api/v4/leads", json=[{"custom_fields_values": [
        {"field_id": select["id"], "values": [{"value": wholesale["value"]}]}]}])
    by_id = api.post("/api/v4/leads", json=[{"custom_fields_values": [
        {"field_id": select["id"], "values": [{"enum_id": wholesale["id"]}]}]}])
    unknown = api.post("/api/v4/leads", json=[{"custom_fields_values": [
        {"field_id": select["id"], "values": [{"value": "Something else"}]}]}])

    assert by_text.status_code == by_id.status_code == 200
    assert only_error(unknown)["path"] == "custom_fields_values.0.values.0.value"


def test_a_tracking_code_the_account_lacks_is_rejected(api, second_api):
    deal = [{"name": "x", "custom_fields_values": [{"field_code": "UTM_TERM", "values": [{"value": "shoes"}]}]}]

    assert api.post("/api/v4/leads", json=deal).status_code == 200
    assert only_error(second_api.post("/api/v4/leads", json=deal))["code"] == "NotSupportedChoice"


def test_a_field_id_of_another_account_is_rejected(api, second_api):
    fields = api.get("/api/v4/leads/custom_fields").json()["_embedded"]["custom_fields"]
    utm_source = next(item["id"] for item in fields if item["code"] == "UTM_SOURCE")

    answer = second_api.post("/api/v4/leads", json=[{"custom_fields_values": [
        {"field_id": utm_source, "values": [{"value": "google"}]}]}])

    assert only_error(answer)["path"] == "custom_fields_values.0.field_id"


def test_patch_needs_the_id_of_an_existing_deal(api):
    answer = api.patch("/api/v4/leads", json=[{"name": "no id"}, {"id": 1, "name": "unknown"}])

    failures = errors_of(answer)
    assert [(item["request_id"], item["errors"][0]["path"]) for item in failures] == [("0", "id"), ("1", "id")]


def test_errors_in_an_embedded_complex_contact_carry_the_nested_path(api):
    answer = api.post("/api/v4/leads/complex", json=[{"name": "x", "_embedded": {"contacts": [
        {"name": "Ivan", "custom_fields_values": [{"field_code": "PHONE", "values": [
            {"value": "+79161234567", "enum_code": "CELL"}]}]}]}}])

    assert only_error(answer)["path"] == "_embedded.contacts.0.custom_fields_values.0.values.0.enum_code"


def test_invalid_json_is_a_400(api):
    answer = api.post("/api/v4/leads", data=b"[{", headers={"Content-Type": "application/json"})

    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/problem+json"
