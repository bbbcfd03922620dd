"""The control API: codes without a browser, inspection, duplicates, reset; never rate limited."""

import pytest

from amocrm_sandbox import Integration
from amocrm_sandbox.control import SandboxControl, SandboxControlError

from .support import exchange


def test_authorize_issues_a_code_for_the_cli_flow(sandbox, control):
    second = sandbox.accounts[1]

    issued = control.authorize(client_id=sandbox.integration.client_id, account_id=second.account_id)

    assert issued["referer"] == second.host
    assert issued["origin"] == second.origin
    answer = exchange(second.origin, sandbox.integration, grant_type="authorization_code", code=issued["code"])
    assert answer.status_code == 200
    assert control.stats(second.account_id)["code_exchanges"] == 1


def test_integrations_can_be_registered_at_run_time(sandbox, control):
    registered = control.register_integration(redirect_uri="https://shop.test/amocrm/oauth/callback/")
    code = control.authorize(client_id=registered["client_id"])["code"]

    answer = exchange(sandbox.accounts[0].origin, Integration(**registered), grant_type="authorization_code",
                      code=code)

    assert answer.status_code == 200
    assert registered["client_id"] in {item["client_id"] for item in control.overview()["integrations"]}


def test_the_control_api_is_served_on_every_server(sandbox):
    origins = [account.origin for account in sandbox.accounts] + [sandbox.www_origin]

    overviews = [SandboxControl(origin).overview() for origin in origins]

    assert all(item["www_origin"] == sandbox.www_origin for item in overviews)
    assert [item["account_id"] for item in overviews[0]["accounts"]] == [a.account_id for a in sandbox.accounts]


def test_current_means_the_account_of_the_server_asked(sandbox, api):
    api.post("/api/v4/leads", json=[{"name": "first account"}])

    assert len(SandboxControl(sandbox.accounts[0].origin).leads()) == 1
    assert SandboxControl(sandbox.accounts[1].origin).leads() == []


def test_duplicate_contacts_are_found_across_phone_formats_and_emails(api, control):
    def person(name, phone=None, email=None):
        fields = ([{"field_code": "PHONE", "values": [{"value": phone}]}] if phone else []) + (
            [{"field_code": "EMAIL", "values": [{"value": email}]}] if email else [])
        return {"name": name, "custom_fields_values": fields}

    ids = [item["id"] for item in api.post("/api/v4/contacts", json=[
        person("a", phone="+7 916 123-45-67"), person("b", phone="89161234567", email="B@Example.com"),
        person("c", email="b@example.com"), person("d", phone="+79990000000"),
    ]).json()["_embedded"]["contacts"]]

    report = control.duplicates()["contacts"]

    assert report["by_phone"] == {"9161234567": ids[:2]}
    assert report["by_email"] == {"b@example.com": ids[1:3]}
    assert report["extra_contacts"] == 2  # a, b and c are one person
    assert report["total"] == 4


def test_duplicate_deals_are_found_by_a_marker_field_or_tag(api, control):
    marker = {"field_code": "UTM_CONTENT", "values": [{"value": "lead-1"}]}
    api.post("/api/v4/leads", json=[
        {"name": "a", "custom_fields_values": [marker]}, {"name": "b", "custom_fields_values": [marker]},
        {"name": "c", "_embedded": {"tags": [{"name": "lead:9"}]}},
        {"name": "d", "_embedded": {"tags": [{"name": "lead:9"}, {"name": "website"}]}},
        {"name": "e", "_embedded": {"tags": [{"name": "website"}]}},
    ])

    report = control.duplicates(lead_field="UTM_CONTENT", tag_prefix="lead:")["leads"]

    assert list(report["by_field"]) == ["lead-1"]
    assert list(report["by_tag"]) == ["lead:9"]
    assert report["extra_leads"] == 2


def test_entities_are_listed_in_api_shape(api, control):
    api.post("/api/v4/leads/complex", json=[{"name": "x", "_embedded": {"contacts": [{"name": "Ivan"}]}}])

    (lead,) = control.leads()
    (contact,) = control.contacts()

    assert lead["_embedded"]["contacts"][0]["id"] == contact["id"]
    assert contact["_embedded"]["leads"][0]["id"] == lead["id"]
    with pytest.raises(SandboxControlError, match="404"):
        control.entities("customers")  # tasks are a collection now


def test_reset_of_one_account_leaves_the_other(sandbox, api, second_api, control):
    api.post("/api/v4/leads", json=[{"name": "one"}])
    second_api.post("/api/v4/leads", json=[{"name": "two"}])

    control.reset(sandbox.accounts[0].account_id)

    assert control.leads() == []
    assert len(control.leads(sandbox.accounts[1].account_id)) == 1
    assert control.stats()["requests"] == 0
    assert api.get("/api/v4/account").status_code == 401  # tokens went with the reset


def test_reset_can_keep_tokens_and_entities(api, control):
    api.post("/api/v4/leads", json=[{"name": "kept"}])

    control.reset(parts=["stats", "limits"])

    assert api.get("/api/v4/account").status_code == 200
    assert len(control.leads()) == 1
    assert control.stats()["requests"] == 1


def test_a_move_to_a_stage_that_does_not_exist_is_refused(api, control):
    deal_id = api.post("/api/v4/leads", json=[{"name": "x"}]).json()["_embedded"]["leads"][0]["id"]

    with pytest.raises(SandboxControlError, match="400"):
        control.move_deal(deal_id, status_id=1)
    with pytest.raises(SandboxControlError, match="404"):
        control.move_deal(1, status_id=142)


def test_a_deal_closed_as_lost_carries_its_loss_reason_when_asked(api, control):
    deal_id = api.post("/api/v4/leads", json=[{"name": "x"}]).json()["_embedded"]["leads"][0]["id"]
    reasons = api.get("/api/v4/leads/loss_reasons").json()["_embedded"]["loss_reasons"]
    assert [reason["name"] for reason in reasons] == ["Дорого", "Выбрали конкурента", "Не дозвонились"]
    assert api.get("/api/v4/account").json()["is_loss_reason_enabled"] is True

    control.move_deal(deal_id, status_id=143, loss_reason_id=reasons[1]["id"])

    plain = api.get(f"/api/v4/leads/{deal_id}").json()
    assert plain["loss_reason_id"] == reasons[1]["id"] and "loss_reason" not in plain["_embedded"]
    listed = api.get("/api/v4/leads", params={"with": "contacts,loss_reason"}).json()["_embedded"]["leads"]
    embedded = next(deal for deal in listed if deal["id"] == deal_id)["_embedded"]["loss_reason"]
    assert [(reason["id"], reason["name"]) for reason in embedded] == [(reasons[1]["id"], "Выбрали конкурента")]

    with pytest.raises(SandboxControlError, match="400"):
        control.move_deal(deal_id, status_id=143, loss_reason_id=1)  # not one of the account's reasons
    control.move_deal(deal_id, status_id=142)
    assert api.get(f"/api/v4/leads/{deal_id}").json()["loss_reason_id"] is None
