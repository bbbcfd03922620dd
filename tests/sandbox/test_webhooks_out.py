"""Deal changes reach subscribers in amoCRM's real webhook format: form-encoded v2 bracket keys."""

import threading
from urllib.parse import parse_qsl

import pytest


def decoded(delivery: dict) -> dict[str, str]:
    return dict(parse_qsl(delivery["body"].decode(), keep_blank_values=True, strict_parsing=True))


def actions_in(delivery: dict) -> set[str]:
    """{"status", "update"} for a body with leads[status][...] and leads[update][...] keys."""
    return {key.split("[")[1].rstrip("]") for key in decoded(delivery) if key.startswith("leads[")}


@pytest.fixture
def subscribe(api, receiver):
    def subscribe_to(*settings: str) -> None:
        answer = api.post("/api/v4/webhooks", json={"destination": receiver.url, "settings": list(settings)})
        assert answer.status_code == 200

    return subscribe_to


def create_deal(api, **fields) -> int:
    return api.post("/api/v4/leads", json=[{"name": "Order", **fields}]).json()["_embedded"]["leads"][0]["id"]


def test_a_new_deal_is_sent_as_add_with_the_documented_headers(sandbox, api, receiver, subscribe):
    subscribe("add_lead")

    deal_id = create_deal(api, price=0, _embedded={"tags": [{"name": "website"}]})

    delivery = receiver.wait_for(1)[0]
    assert delivery["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert delivery["headers"]["User-Agent"] == "amoCRM-WebHook-client/1.0"
    assert b"leads%5Badd%5D%5B0%5D%5Bid%5D=" in delivery["body"]
    form = decoded(delivery)
    account = sandbox.accounts[0]
    assert form["leads[add][0][id]"] == str(deal_id)
    assert form["leads[add][0][name]"] == "Order"
    assert form["leads[add][0][price]"] == ""
    assert form["leads[add][0][tags][0][name]"] == "website"
    assert form["account[id]"] == str(account.account_id)
    assert form["account[subdomain]"] == account.subdomain
    assert form["account[_links][self]"] == account.origin


def test_a_status_change_sends_status_and_update_in_one_post(api, receiver, subscribe, clock):
    deal_id = create_deal(api)
    old_status = api.get(f"/api/v4/leads/{deal_id}").json()["status_id"]
    subscribe("status_lead", "update_lead")
    clock.advance(30)

    api.patch("/api/v4/leads", json=[{"id": deal_id, "status_id": 142, "price": 15000}])

    (delivery,) = receiver.wait_for(1)
    assert actions_in(delivery) == {"status", "update"}
    form = decoded(delivery)
    assert form["leads[status][0][id]"] == str(deal_id)
    assert form["leads[status][0][status_id]"] == "142"
    assert form["leads[status][0][old_status_id]"] == str(old_status)
    assert form["leads[status][0][price]"] == "15000"
    assert form["leads[status][0][last_modified]"] == str(int(clock.now))
    assert "leads[status][0][pipeline_id]" in form
    assert form["leads[update][0][id]"] == str(deal_id)


def test_only_subscribed_events_are_sent(api, receiver, subscribe, sandbox):
    subscribe("status_lead")
    deal_id = create_deal(api)

    api.patch(f"/api/v4/leads/{deal_id}", json={"name": "Renamed"})
    api.patch(f"/api/v4/leads/{deal_id}", json={"status_id": 143})
    sandbox.wait_for_webhooks()

    assert [actions_in(item) for item in receiver.received] == [{"status"}]


def test_a_control_move_to_won_carries_price_and_pipeline(sandbox, api, control, receiver, subscribe):
    deal_id = create_deal(api)
    subscribe("status_lead", "update_lead")

    moved = control.move_deal(deal_id, status_id=142, price=5000)

    form = decoded(receiver.wait_for(1)[0])
    assert moved["status_id"] == 142 and moved["closed_at"]
    assert form["leads[status][0][status_id]"] == "142"
    assert form["leads[status][0][price]"] == "5000"
    assert form["leads[status][0][pipeline_id]"] == str(moved["pipeline_id"])
    assert "leads[status][0][old_pipeline_id]" not in form


def test_a_reduced_body_carries_ids_only(sandbox, api, control, receiver, subscribe):
    deal_id = create_deal(api, price=700)
    subscribe("status_lead", "update_lead")

    control.move_deal(deal_id, status_id=142, reduced=True)

    form = decoded(receiver.wait_for(1)[0])
    assert set(form) == {
        "leads[status][0][id]", "leads[status][0][status_id]", "leads[status][0][pipeline_id]",
        "leads[status][0][old_status_id]", "leads[status][0][old_pipeline_id]", "account[id]", "account[subdomain]",
    }


def test_a_move_between_pipelines_sends_old_pipeline_id(api, control, receiver, subscribe):
    pipelines = api.get("/api/v4/leads/pipelines").json()["_embedded"]["pipelines"]
    main, other = (next(item for item in pipelines if item["is_main"] is flag) for flag in (True, False))
    deal_id = create_deal(api)
    subscribe("status_lead")

    control.move_deal(deal_id, status_id=142, pipeline_id=other["id"])

    form = decoded(receiver.wait_for(1)[0])
    assert form["leads[status][0][pipeline_id]"] == str(other["id"])
    assert form["leads[status][0][old_pipeline_id]"] == str(main["id"])


def test_deleting_a_deal_sends_delete_with_id_only(api, control, receiver, subscribe):
    deal_id = create_deal(api)
    subscribe("delete_lead", "restore_lead")

    control.delete_deal(deal_id)
    assert api.get(f"/api/v4/leads/{deal_id}").status_code == 204
    control.restore_deal(deal_id)

    # Each change is its own delivery thread: they may arrive in either order, as from amoCRM.
    by_action = {frozenset(actions_in(item)): decoded(item) for item in receiver.wait_for(2)}
    deleted = {key: value for key, value in by_action[frozenset({"delete"})].items() if key.startswith("leads")}
    assert deleted == {"leads[delete][0][id]": str(deal_id), "leads[delete][0][type]": "lead"}
    assert by_action[frozenset({"restore"})]["leads[restore][0][id]"] == str(deal_id)


def test_custom_fields_are_sent_with_ids_names_codes_and_enums(api, receiver, subscribe):
    fields = api.get("/api/v4/leads/custom_fields").json()["_embedded"]["custom_fields"]
    select = next(item for item in fields if item["type"] == "select")
    date = next(item for item in fields if item["type"] == "date")
    subscribe("add_lead")

    create_deal(api, custom_fields_values=[
        {"field_code": "UTM_SOURCE", "values": [{"value": "google"}]},
        {"field_id": select["id"], "values": [{"enum_id": select["enums"][0]["id"]}]},
        {"field_id": date["id"], "values": [{"value": 1_700_000_000}]},
    ])

    form = decoded(receiver.wait_for(1)[0])
    assert form["leads[add][0][custom_fields][0][code]"] == "UTM_SOURCE"
    assert form["leads[add][0][custom_fields][0][values][0][value]"] == "google"
    assert form["leads[add][0][custom_fields][1][id]"] == str(select["id"])
    assert form["leads[add][0][custom_fields][1][values][0][enum]"] == str(select["enums"][0]["id"])
    assert form["leads[add][0][custom_fields][2][values][0]"] == "1700000000"


def test_a_batch_of_new_deals_arrives_in_one_post(api, receiver, subscribe, sandbox):
    subscribe("add_lead")

    api.post("/api/v4/leads", json=[{"name": str(index)} for index in range(3)])
    sandbox.wait_for_webhooks()

    assert len(receiver.received) == 1
    assert {key for key in decoded(receiver.received[0]) if key.endswith("[id]") and key.startswith("leads")} == {
        "leads[add][0][id]", "leads[add][1][id]", "leads[add][2][id]"}


def test_deliveries_are_recorded_with_answer_code_and_duration(api, control, receiver, subscribe):
    subscribe("add_lead")
    receiver.status = 500
    create_deal(api)

    (delivery,) = control.wait_for_deliveries(1)

    assert delivery["destination"] == receiver.url
    assert delivery["status"] == 500 and delivery["ok"] is False
    assert delivery["events"] == ["leads.add"]
    assert delivery["duration_ms"] >= 0 and delivery["sent_at"]
    assert "leads%5Badd%5D" in delivery["body"]


def test_an_unreachable_destination_is_recorded_as_an_error(api, control, subscribe):
    api.post("/api/v4/webhooks", json={"destination": "http://127.0.0.1:9/hook", "settings": ["add_lead"]})
    create_deal(api)

    (delivery,) = control.wait_for_deliveries(1)

    assert delivery["status"] is None and delivery["error"]


def test_the_api_answer_does_not_wait_for_a_slow_subscriber(api, receiver, subscribe, sandbox):
    subscribe("add_lead")
    gate = threading.Event()
    original = sandbox.accounts[0].outbox.deliver

    def slow_deliver(*args, **kwargs):
        gate.wait(2)
        return original(*args, **kwargs)

    sandbox.accounts[0].outbox.deliver = slow_deliver
    answer = api.post("/api/v4/leads", json=[{"name": "fast"}], timeout=1)
    gate.set()

    assert answer.status_code == 200
    assert sandbox.wait_for_webhooks()


def test_a_raw_delivery_sends_the_given_bytes(control, receiver):
    body = "leads%5Bstatus%5D%5B0%5D%5Bid%5D=1&leads%5Bstatus%5D%5B0%5D%5Bstat"

    record = control.deliver_raw(receiver.url, body)

    assert record["status"] == 200
    assert receiver.received[0]["body"] == body.encode()
    assert receiver.received[0]["headers"]["User-Agent"] == "amoCRM-WebHook-client/1.0"
