"""Unit tests of the amoCRM webhook parser: one raw-body fixture per delivery shape, negative cases by hand."""

import json
import random
from urllib.parse import quote_plus

import pytest

from amocrm.webhooks.parser import (
    MAX_DEPTH,
    MAX_PAIRS,
    WebhookItem,
    WebhookParseError,
    extract_delivery,
    item_int,
    parse_body,
)
from tests.amocrm.webhook_items import item_custom_fields, item_modified_at, item_tags
from tests.fixtures.loader import FIXTURES_DIR, load_fixture

FORM = "application/x-www-form-urlencoded"
WEBHOOKS_DIR = FIXTURES_DIR / "amocrm" / "webhooks"


def delivery_of(name, content_type=FORM):
    return extract_delivery(parse_body(load_fixture(f"amocrm/webhooks/{name}"), content_type))


def summary(delivery):
    return [(item.entity, item.action, item.entity_id) for item in delivery.items]


def encode(pairs):
    """Form-encode the way amoCRM (PHP's http_build_query) does: brackets as %5B/%5D, spaces as "+"."""
    return "&".join(f"{quote_plus(key, safe='')}={quote_plus(value, safe='')}" for key, value in pairs).encode()


def item(**data):
    return WebhookItem(entity="leads", action="update", data=data, entity_id=None)


# --- One test per fixture shape ------------------------------------------------------------------


def test_it_parses_a_lead_add_body_with_an_empty_price():
    delivery = delivery_of("lead_add.txt")

    assert (delivery.account_id, delivery.subdomain) == (123456, "example")
    assert summary(delivery) == [("leads", "add", 9001)]
    lead = delivery.items[0]
    assert lead.data["name"] == "Заявка с сайта"
    assert lead.data["price"] == ""
    assert lead.data["old_status_id"] == ""
    assert item_int(lead, "price") is None
    assert item_int(lead, "status_id") == 555
    assert item_modified_at(lead) == 1700000000
    assert item_tags(lead) == ["сайт"]
    assert item_custom_fields(lead) == [
        {"id": 1001, "name": "utm_source", "code": None, "values": [{"value": "google", "enum": None}]}
    ]


def test_it_parses_a_lead_update_body_with_select_date_and_multiselect_fields_and_tags():
    delivery = delivery_of("lead_update.txt")

    assert summary(delivery) == [("leads", "update", 9001)]
    lead = delivery.items[0]
    assert item_int(lead, "price") == 15000
    assert item_modified_at(lead) == 1700000500
    assert item_tags(lead) == ["сайт", "VIP"]
    assert item_custom_fields(lead) == [
        {"id": 1001, "name": "utm_source", "code": "UTM_SOURCE", "values": [{"value": "google", "enum": None}]},
        {"id": 1002, "name": "Источник", "code": None, "values": [{"value": "Сайт", "enum": "3001"}]},
        # The date field arrives bare, as custom_fields[2][values][0]=<unix ts>.
        {"id": 1003, "name": "Дата встречи", "code": None, "values": [{"value": "1700600000", "enum": None}]},
        {
            "id": 1004,
            "name": "Услуги",
            "code": None,
            "values": [{"value": "Монтаж", "enum": "3101"}, {"value": "Доставка", "enum": "3102"}],
        },
    ]


def test_it_parses_a_lead_moved_to_won():
    delivery = delivery_of("lead_status_won.txt")

    assert (delivery.account_id, delivery.subdomain) == (123456, "example")
    assert summary(delivery) == [("leads", "status", 9001)]
    lead = delivery.items[0]
    assert [item_int(lead, field) for field in ("status_id", "old_status_id", "pipeline_id", "price")] == [
        142,
        555,
        777,
        15000,
    ]
    assert item_modified_at(lead) == 1700001000


def test_it_parses_a_reduced_status_body():
    delivery = delivery_of("lead_status_reduced.txt")

    assert (delivery.account_id, delivery.subdomain) == (123456, "example")
    assert summary(delivery) == [("leads", "status", 9001)]
    assert delivery.items[0].data == {
        "id": "9001",
        "status_id": "142",
        "pipeline_id": "777",
        "old_status_id": "555",
        "old_pipeline_id": "777",
    }
    assert item_int(delivery.items[0], "price") is None
    assert item_modified_at(delivery.items[0]) is None
    assert item_custom_fields(delivery.items[0]) == []
    assert item_tags(delivery.items[0]) == []


def test_it_parses_a_lead_moved_to_another_pipeline():
    lead = delivery_of("lead_pipeline_moved.txt").items[0]

    assert (lead.action, lead.entity_id) == ("status", 9001)
    assert (item_int(lead, "pipeline_id"), item_int(lead, "old_pipeline_id")) == (888, 777)
    assert (item_int(lead, "status_id"), item_int(lead, "old_status_id")) == (601, 555)


def test_it_parses_a_change_of_responsible_user():
    lead = delivery_of("lead_responsible.txt").items[0]

    assert (lead.entity, lead.action, lead.entity_id) == ("leads", "responsible", 9001)
    assert (item_int(lead, "responsible_user_id"), item_int(lead, "old_responsible_user_id")) == (5050, 4040)


def test_it_parses_a_delete_that_carries_only_the_id_and_type():
    delivery = delivery_of("lead_delete.txt")

    assert summary(delivery) == [("leads", "delete", 9001)]
    assert delivery.items[0].data == {"id": "9001", "type": "lead"}
    assert delivery.account_id == 123456


def test_it_parses_a_restore():
    lead = delivery_of("lead_restore.txt").items[0]

    assert (lead.entity, lead.action, lead.entity_id) == ("leads", "restore", 9001)
    assert item_int(lead, "status_id") == 142
    assert item_modified_at(lead) == 1700005000


def test_it_parses_a_note_added_to_a_lead():
    delivery = delivery_of("lead_note.txt")

    assert summary(delivery) == [("leads", "note", None)]
    note = delivery.items[0].data["note"]
    assert note["element_id"] == "9001"
    assert note["text"] == "Клиент просит перезвонить после 15:00"


def test_it_keeps_both_actions_of_one_post_in_body_order():
    delivery = delivery_of("update_and_status_together.txt")

    assert summary(delivery) == [("leads", "update", 9001), ("leads", "status", 9001)]
    update, status = delivery.items
    assert (item_int(update, "status_id"), item_int(status, "status_id")) == (555, 142)
    assert item_modified_at(update) < item_modified_at(status)


def test_it_parses_several_leads_under_several_actions():
    delivery = delivery_of("several_leads.txt")

    assert summary(delivery) == [
        ("leads", "status", 9001),
        ("leads", "status", 9002),
        ("leads", "status", 9003),
        ("leads", "update", 9004),
        ("leads", "responsible", 9005),
        ("leads", "delete", 9006),
    ]
    assert [item_int(lead, "status_id") for lead in delivery.items[:3]] == [142, 143, 142]
    assert [item_int(lead, "price") for lead in delivery.items[:3]] == [1000, 2000, 3000]


def test_it_parses_a_contact_with_phone_and_email():
    delivery = delivery_of("contact_add.txt")

    assert summary(delivery) == [("contacts", "add", 7001)]
    fields = item_custom_fields(delivery.items[0])
    assert [(field["code"], field["values"]) for field in fields] == [
        ("PHONE", [{"value": "+79001234567", "enum": "4001"}]),
        ("EMAIL", [{"value": "ivan@example.com", "enum": "4011"}]),
    ]


def test_it_tells_a_company_arriving_under_contacts_by_its_type():
    delivery = delivery_of("company_add.txt")

    assert summary(delivery) == [("companies", "add", 8001)]
    assert delivery.items[0].data["name"] == "ООО «Ромашка»"


def test_it_parses_a_task():
    delivery = delivery_of("task_add.txt")

    assert summary(delivery) == [("tasks", "add", 6001)]
    assert item_int(delivery.items[0], "element_id") == 9001
    assert delivery.items[0].data["text"] == "Перезвонить клиенту"


def test_it_accepts_an_old_sender_with_only_the_subdomain():
    delivery = delivery_of("old_sender_subdomain_only.txt")

    assert (delivery.account_id, delivery.subdomain) == (None, "example")
    assert summary(delivery) == [("leads", "status", 9001)]


def test_it_takes_the_account_id_from_the_lead_when_there_is_no_account_block():
    delivery = delivery_of("no_account_block.txt")

    assert (delivery.account_id, delivery.subdomain) == (123456, None)
    assert summary(delivery) == [("leads", "update", 9001)]


def test_it_keeps_what_parses_of_a_body_cut_mid_key():
    delivery = delivery_of("truncated.txt")

    assert (delivery.account_id, delivery.subdomain) == (None, None)
    assert summary(delivery) == [("leads", "status", 9001), ("leads", "status", 9002)]
    assert delivery.items[1].data == {"id": "9002", "status_id": "142", "pipeline_id": "777", "old_status_id": "555"}


def test_it_skips_dangling_fragments_and_keeps_the_rest():
    parsed = parse_body(load_fixture("amocrm/webhooks/dangling_fragment.txt"), FORM)

    assert parsed == {
        "leads": {
            "status": [
                {
                    "id": "9001",
                    "status_id": "142",
                    "pipeline_id": "777",
                    "old_status_id": "555",
                    "old_pipeline_id": "777",
                }
            ]
        },
        "account": {"subdomain": "example", "id": "123456"},
    }


def test_it_replaces_invalid_utf8_instead_of_failing():
    delivery = delivery_of("invalid_utf8.bin")

    lead = delivery.items[0]
    assert (lead.entity_id, item_int(lead, "status_id"), delivery.account_id) == (9001, 555, 123456)
    assert lead.data["name"] == "За\ufffd\ufffd\ufffd"
    assert lead.data["price"] == "15\ufffd000"
    assert item_int(lead, "price") is None


def test_it_decodes_plus_as_space_and_percent_escapes_inside_values():
    contact = delivery_of("plus_and_percent.txt").items[0]

    assert contact.data["name"] == "Иван Петрович Сидоров"
    assert item_custom_fields(contact) == [
        {
            "id": 2003,
            "name": "Компания и должность",
            "code": None,
            "values": [{"value": "Рога & Копыта, 100% = успех, C++", "enum": None}],
        }
    ]


def test_it_parses_a_json_body_into_the_same_items():
    json_delivery = delivery_of("json_body.json", "application/json; charset=utf-8")
    form_delivery = delivery_of("lead_status_won.txt")

    assert (json_delivery.account_id, json_delivery.subdomain) == (123456, "example")
    assert summary(json_delivery) == [("leads", "status", 9001)]
    json_lead, form_lead = json_delivery.items[0], form_delivery.items[0]
    assert {key: value for key, value in form_lead.data.items() if key != "custom_fields"} == json_lead.data
    assert item_modified_at(json_lead) == 1700001000


def test_it_parses_a_delivery_of_250_deals():
    pairs = []
    for index in range(250):
        prefix = f"leads[status][{index}]"
        pairs += [
            (f"{prefix}[id]", str(10_000 + index)),
            (f"{prefix}[status_id]", "142"),
            (f"{prefix}[old_status_id]", "555"),
            (f"{prefix}[pipeline_id]", "777"),
            (f"{prefix}[price]", str(index * 100) if index % 10 else ""),
            (f"{prefix}[last_modified]", str(1_700_000_000 + index)),
            (f"{prefix}[custom_fields][0][id]", "1001"),
            (f"{prefix}[custom_fields][0][values][0][value]", "google"),
        ]
    pairs += [("account[id]", "123456"), ("account[subdomain]", "example")]

    delivery = extract_delivery(parse_body(encode(pairs), FORM))

    assert delivery.account_id == 123456
    assert [lead.entity_id for lead in delivery.items] == [10_000 + index for index in range(250)]
    assert {lead.action for lead in delivery.items} == {"status"}
    assert item_int(delivery.items[11], "price") == 1100
    assert delivery.items[10].data["price"] == ""
    assert item_modified_at(delivery.items[-1]) == 1_700_000_249


@pytest.mark.parametrize("path", sorted(WEBHOOKS_DIR.iterdir()), ids=lambda path: path.name)
def test_it_never_raises_anything_but_a_parse_error_on_any_cut_of_a_fixture(path):
    # Deliveries can be cut anywhere: mid-escape, mid-bracket, mid-value.
    body = path.read_bytes()
    content_type = "application/json" if path.suffix == ".json" else FORM
    for length in range(len(body) + 1):
        try:
            parsed = parse_body(body[:length], content_type)
        except WebhookParseError:
            continue
        for found in extract_delivery(parsed).items:
            item_int(found, "status_id")
            item_modified_at(found)
            item_custom_fields(found)
            item_tags(found)


# --- PHP bracket semantics -----------------------------------------------------------------------


def test_it_turns_sparse_indices_into_an_ordered_list_without_holes():
    assert parse_body(b"a[5]=five&a[0]=zero&a[12]=twelve", FORM) == {"a": ["zero", "five", "twelve"]}


def test_it_keeps_non_canonical_indices_as_dict_keys():
    assert parse_body(b"a[01]=x&a[1]=y", FORM) == {"a": {"01": "x", "1": "y"}}
    assert parse_body(b"a[0]=x&a[name]=y", FORM) == {"a": {"0": "x", "name": "y"}}


def test_it_lets_the_last_of_repeated_keys_win():
    assert parse_body(b"a[b]=1&a[b]=2&c=&c=3", FORM) == {"a": {"b": "2"}, "c": "3"}


def test_it_appends_with_empty_brackets_after_existing_indices():
    assert parse_body(b"a[]=x&a[]=y&b[3]=p&b[]=q&c[][id]=1&c[][id]=2", FORM) == {
        "a": ["x", "y"],
        "b": ["p", "q"],
        "c": [{"id": "1"}, {"id": "2"}],
    }


def test_it_keeps_empty_values():
    assert parse_body(b"a[price]=&a[name]=x", FORM) == {"a": {"price": "", "name": "x"}}


def test_it_lets_a_later_nested_key_replace_a_scalar():
    assert parse_body(b"a=1&a[b]=2", FORM) == {"a": {"b": "2"}}


def test_it_does_not_let_a_stray_scalar_erase_parsed_items():
    assert parse_body(b"leads[status][0][id]=9001&leads=&leads[status]=x", FORM) == {
        "leads": {"status": [{"id": "9001"}]}
    }


def test_it_skips_pieces_with_broken_keys():
    body = b"=x&[a]=1&a[b=2&a]b[=3&a[b]c=4&a[b][c]=5&keyonly&&%5B=6"

    assert parse_body(body, FORM) == {"a": {"b": {"c": "5"}}}


def test_it_keeps_a_malformed_percent_escape_literally():
    assert parse_body(b"a=100%&b=%zz&c=%E", FORM) == {"a": "100%", "b": "%zz", "c": "%E"}


def test_it_keeps_an_index_too_long_to_be_a_number_as_a_string_key():
    long_index = "9" * 5000

    assert parse_body(f"a[{long_index}]=x".encode(), FORM) == {"a": {long_index: "x"}}


def test_it_ignores_whitespace_around_the_body():
    assert parse_body(b"\r\n a=1&b=2\n", FORM) == {"a": "1", "b": "2"}


# --- Content types ------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "multipart/form-data; boundary=x"])
def test_it_reads_a_form_body_when_the_content_type_is_missing_or_unknown(content_type):
    assert parse_body(b"leads[delete][0][id]=9001", content_type) == {"leads": {"delete": [{"id": "9001"}]}}


def test_it_reads_a_json_object_when_the_content_type_is_missing():
    assert parse_body(b'{"leads": {"delete": [{"id": "9001"}]}}', None) == {"leads": {"delete": [{"id": "9001"}]}}


def test_it_honours_a_content_type_with_charset():
    assert parse_body(b"a=%D1%8F", "Application/X-WWW-Form-Urlencoded; charset=UTF-8") == {"a": "я"}


# --- Bodies that yield nothing usable ----------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   \r\n"])
@pytest.mark.parametrize("content_type", [FORM, "application/json", None])
def test_it_rejects_an_empty_body(body, content_type):
    with pytest.raises(WebhookParseError):
        parse_body(body, content_type)


def test_it_rejects_binary_garbage_without_any_pair():
    garbage = bytes(random.Random(6).randrange(256) for _ in range(512)).replace(b"=", b"")

    with pytest.raises(WebhookParseError):
        parse_body(garbage, None)


def test_it_rejects_a_form_body_in_which_no_piece_parses():
    with pytest.raises(WebhookParseError):
        parse_body(b"leads[status][0][na&=x&&", FORM)


def test_it_rejects_a_key_nested_too_deep():
    deep_enough = "a" + "[x]" * MAX_DEPTH
    assert parse_body(f"{deep_enough}=1".encode(), FORM)

    with pytest.raises(WebhookParseError, match="deeper"):
        parse_body(("a" + "[x]" * 10_000 + "=1").encode(), FORM)


def test_it_rejects_too_many_pairs():
    with pytest.raises(WebhookParseError, match="pairs"):
        parse_body(b"&".join([b"a[]=1"] * (MAX_PAIRS + 1)), FORM)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"leads"', b"42", b"null", b"{}"])
def test_it_rejects_json_that_is_not_a_non_empty_object(body):
    with pytest.raises(WebhookParseError):
        parse_body(body, "application/json")


@pytest.mark.parametrize("body", [b'{"leads": ', b"leads[status][0][id]=1", b'{"a": "\xff"}'])
def test_it_rejects_invalid_json(body):
    with pytest.raises(WebhookParseError, match="Invalid JSON"):
        parse_body(body, "application/json")


def test_it_rejects_json_nested_too_deep():
    with pytest.raises(WebhookParseError, match="deeper"):
        parse_body(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json")
    with pytest.raises(WebhookParseError, match="deeper"):
        parse_body(json.dumps({"a": [[[[[[[[[[[1]]]]]]]]]]]}).encode(), "application/json")


def test_it_rejects_json_with_too_many_values():
    with pytest.raises(WebhookParseError, match="values"):
        parse_body(json.dumps({"a": [1] * (MAX_PAIRS + 1)}).encode(), "application/json")


# --- Walking the parsed structure ----------------------------------------------------------------


def test_it_skips_items_that_are_not_dicts_and_keeps_unknown_entities_and_actions():
    parsed = parse_body(
        b"leads[status][0]=x&leads[status][1][id]=1&leads[add]=y&customers[add][0][id]=5&leads[merge][0][id]=2"
        b"&account_id=77",
        FORM,
    )

    delivery = extract_delivery(parsed)

    assert summary(delivery) == [("leads", "status", 1), ("leads", "merge", 2), ("customers", "add", 5)]
    assert delivery.account_id == 77


def test_it_reads_items_keyed_by_index_or_sent_without_an_index_in_json():
    parsed = {"leads": {"status": {"0": {"id": "1"}, "1": {"id": 2}}, "delete": {"id": "3", "type": "lead"}}}

    assert summary(extract_delivery(parsed)) == [("leads", "status", 1), ("leads", "status", 2), ("leads", "delete", 3)]


def test_it_leaves_the_entity_id_empty_when_the_id_is_not_numeric():
    parsed = parse_body(b"leads[add][0][id]=&leads[add][1][id]=abc&leads[add][2][name]=x", FORM)

    assert summary(extract_delivery(parsed)) == [("leads", "add", None)] * 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("142", 142),
        (" 142 ", 142),
        ("", None),
        (None, None),
        ("abc", None),
        ("1_000", None),
        ("12.5", None),
        (7, 7),
        (7.0, 7),
        (True, None),
        ({"x": "1"}, None),
        ("٣", None),
    ],
)
def test_item_int_tolerates_what_arrives(value, expected):
    assert item_int(item(status_id=value), "status_id") == expected


def test_item_modified_at_takes_the_newest_of_the_timestamps():
    assert item_modified_at(item(date_create="1700000000", last_modified="1700000900", updated_at="")) == 1700000900
    assert item_modified_at(item(created_at=1700000000, updated_at="2023-11-14T22:30:00Z")) == 1700001000
    assert item_modified_at(item(last_modified="0", updated_at="soon")) is None


def test_item_custom_fields_tolerates_odd_shapes():
    odd = item(
        custom_fields=[
            "not a field",
            {"name": "no id", "values": [{"value": "x"}]},
            {"id": "1", "values": "bare"},
            {"id": "2", "values": {"value": "single", "enum": 5}},
            {"id": "3", "values": [{"value": {"nested": "x"}}, {"enum": "9"}, None, 1700000000]},
            {"id": "4"},
        ]
    )

    assert item_custom_fields(odd) == [
        {"id": 1, "name": None, "code": None, "values": [{"value": "bare", "enum": None}]},
        {"id": 2, "name": None, "code": None, "values": [{"value": "single", "enum": "5"}]},
        {
            "id": 3,
            "name": None,
            "code": None,
            "values": [{"value": "", "enum": "9"}, {"value": "1700000000", "enum": None}],
        },
        {"id": 4, "name": None, "code": None, "values": []},
    ]
    assert item_custom_fields(item(custom_fields="x")) == []


def test_item_tags_skips_tags_without_a_name():
    assert item_tags(item(tags=[{"id": "1"}, {"id": "2", "name": ""}, "x", {"name": "VIP"}])) == ["VIP"]
    assert item_tags(item(tags="VIP")) == []


def test_a_form_body_of_numeric_keys_still_parses_to_a_dict():
    """Found by the property tests: `0=` became the list [""], which no caller expects."""
    assert parse_body(b"0=&1=x", "application/x-www-form-urlencoded") == {"0": "", "1": "x"}


def test_an_item_id_of_zero_or_below_names_no_entity():
    """Found by the property tests: `leads[restore][0][id]=-1` sent a read of /api/v4/leads/-1."""
    parsed = parse_body(b"leads[restore][0][id]=-1&leads[status][0][id]=0&leads[add][0][id]=5", None)

    assert [item.entity_id for item in extract_delivery(parsed).items] == [None, None, 5]
