"""The sandbox's tasks endpoint, as amoCRM's: POST /api/v4/tasks takes an array; users carry rights.is_active."""

from tests.sandbox.test_api import contact


def _deal(api) -> int:
    return api.post("/api/v4/leads", json=[{"name": "Order"}]).json()["_embedded"]["leads"][0]["id"]


def test_tasks_are_created_in_one_array_on_deals_and_listed(api, control):
    first, second = _deal(api), _deal(api)
    manager = next(user for user in api.get("/api/v4/users").json()["_embedded"]["users"]
                   if not user["rights"]["is_admin"] and user["rights"]["is_active"])

    answer = api.post("/api/v4/tasks", json=[
        {"entity_id": first, "entity_type": "leads", "text": "Call back", "complete_till": 1_800_000_000,
         "task_type_id": 2, "responsible_user_id": manager["id"], "request_id": "x"},
        {"entity_id": second, "entity_type": "leads", "text": "Call back too", "complete_till": 1_800_000_060},
    ])

    assert answer.status_code == 200
    created = answer.json()["_embedded"]["tasks"]
    assert [item["request_id"] for item in created] == ["x", "1"]
    stored = {task["entity_id"]: task for task in control.tasks()}
    assert (stored[first]["task_type_id"], stored[first]["responsible_user_id"]) == (2, manager["id"])
    assert (stored[second]["task_type_id"], stored[second]["complete_till"]) == (1, 1_800_000_060)
    listed = api.get("/api/v4/tasks", params={"filter[entity_id][]": [first], "filter[entity_type]": "leads"})
    assert [task["text"] for task in listed.json()["_embedded"]["tasks"]] == ["Call back"]


def test_a_task_needs_a_text_a_deadline_an_existing_deal_and_a_known_type(api):
    answer = api.post("/api/v4/tasks", json=[
        {"entity_id": 1, "entity_type": "leads", "task_type_id": 77, "responsible_user_id": 5}])

    assert answer.status_code == 400
    paths = {error["path"] for error in answer.json()["validation-errors"][0]["errors"]}
    assert paths == {"text", "complete_till", "entity_id", "task_type_id", "responsible_user_id"}
    assert api.post("/api/v4/tasks", json={"text": "x"}).status_code == 400  # an object, not an array


def test_an_inactive_user_is_listed_as_inactive(api):
    users = api.get("/api/v4/users").json()["_embedded"]["users"]
    assert [user["name"] for user in users if not user["rights"]["is_active"]] == ["Олег Уволенный"]


def test_contacts_by_id_embed_their_deal_ids(api):
    contact_id = api.post("/api/v4/contacts", json=[contact("Olga", phone="+79160000009")]).json()[
        "_embedded"]["contacts"][0]["id"]
    deal_id = api.post("/api/v4/leads", json=[{"name": "x", "_embedded": {"contacts": [{"id": contact_id}]}}]).json()[
        "_embedded"]["leads"][0]["id"]
    found = api.get("/api/v4/contacts", params={"filter[id][]": [contact_id], "with": "leads"}).json()
    assert [deal["id"] for deal in found["_embedded"]["contacts"][0]["_embedded"]["leads"]] == [deal_id]
