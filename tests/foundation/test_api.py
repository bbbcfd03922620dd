"""OpenAPI schema and docs are served; every API error has the one shape {"errors": {field: [messages]}}."""

import pytest

pytestmark = pytest.mark.urls("tests.foundation.urls")


def test_the_openapi_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "amoCRM integration API"


def test_the_api_docs_page_is_served(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger" in response.content.lower()


def test_validation_errors_list_messages_per_field(client):
    response = client.post("/test/sample/", {"name": "too long a name"}, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "errors": {
            "name": ["Ensure this field has no more than 5 characters."],
            "contact": ["This field is required."],
        }
    }


def test_nested_errors_are_flattened_with_dotted_names(client):
    response = client.post("/test/sample/", {"name": "ok", "contact": {}}, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"errors": {"contact.phone": ["This field is required."]}}


def test_errors_without_a_field_are_non_field_errors(client):
    body = {"name": "both", "contact": {"phone": "1"}}

    response = client.post("/test/sample/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"errors": {"non_field_errors": ["phone or email, at least one"]}}


def test_other_api_exceptions_use_the_detail_key(client):
    missing = {"name": "nope", "contact": {"phone": "1"}}
    not_found = client.post("/test/sample/", missing, content_type="application/json")
    bad_json = client.post("/test/sample/", "{not json", content_type="application/json")
    wrong_type = client.post("/test/sample/", "<x/>", content_type="application/xml")
    wrong_method = client.get("/test/sample/")

    assert not_found.status_code == 404
    assert not_found.json() == {"errors": {"detail": ["Not found."]}}
    assert bad_json.status_code == 400
    assert list(bad_json.json()["errors"]) == ["detail"]
    assert wrong_type.status_code == 415
    assert list(wrong_type.json()["errors"]) == ["detail"]
    assert wrong_method.status_code == 405
    assert list(wrong_method.json()["errors"]) == ["detail"]


def test_a_valid_request_passes_through(client):
    response = client.post("/test/sample/", {"name": "ok", "contact": {"phone": "1"}}, content_type="application/json")

    assert response.status_code == 201
    assert response.json() == {"ok": True}
