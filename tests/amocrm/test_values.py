"""amocrm.values as the webhook parser relies on it: JSON numbers as long as no amoCRM id or time ever is."""

from amocrm.values import to_id, to_int
from amocrm.webhooks.parser import extract_delivery, parse_body


def test_a_json_number_longer_than_18_digits_is_no_int_as_its_string_is_not():
    assert to_int(10**17) == 10**17 and to_int(-(10**17)) == -(10**17)
    assert to_int(10**18) is None and to_int(-(10**19)) is None and to_int(10**300) is None
    assert to_id(10**18) is None


def test_a_json_delivery_with_a_huge_id_names_no_entity():
    parsed = parse_body(b'{"leads": {"status": [{"id": 100000000000000000000, "status_id": 142}, {"id": 7.0}]}}',
                        "application/json")

    assert [item.entity_id for item in extract_delivery(parsed).items] == [None, 7]
