"""The hook's field renaming on its own: presets, aliases, Tilda's cookies, client ids only where known."""

from leads.intake.hook_fields import aliases_for, intake_input, is_probe, parse_cookies
from leads.models import HookPreset

OURS = {"source", "name", "phone", "email", "message", "utm_source", "utm_medium", "utm_campaign", "utm_term",
        "utm_content", "referrer", "page_url", "fields", "website"}
TILDA_COOKIES = ("_ym_uid=1700000000123456789; _ga=GA1.1.123456789.1700000000; "
                 "TILDAUTM=utm_source%3Dyandex%7C%7C%7Cutm_medium%3Dcpc%7C%7C%7C")


def rename(body, preset=HookPreset.AUTO, aliases=None, known=OURS):
    return intake_input(body, known=known, table=aliases_for(preset, aliases or {}))


def test_client_ids_come_from_tildas_cookies_only_when_the_intake_has_fields_for_them():
    body = {"Phone": "+79123456789", "COOKIES": TILDA_COOKIES}
    assert rename(body) == {"phone": "+79123456789", "utm_source": "yandex", "utm_medium": "cpc"}
    with_ids = rename(body, known=OURS | {"ym_client_id", "ga_client_id"})
    assert (with_ids["ym_client_id"], with_ids["ga_client_id"]) == ("1700000000123456789", "123456789.1700000000")


def test_utm_fields_in_the_body_win_over_the_cookies():
    assert rename({"utm_source": "google", "COOKIES": TILDA_COOKIES})["utm_source"] == "google"


def test_wpforms_keys_and_the_common_russian_names_are_understood():
    assert rename({"Name (First)": "Ольга", "Comment or Message": "Позвоните", "Телефон": "8 912 000 00 00",
                   "Электронная почта": "o@example.com"}, preset=HookPreset.WPFORMS) == {
        "name": "Ольга", "message": "Позвоните", "phone": "8 912 000 00 00", "email": "o@example.com"}


def test_a_preset_for_one_builder_does_not_read_anothers_numbered_fields():
    assert rename({"tel-7": "+79123456789"}, preset=HookPreset.CF7) == {"phone": "+79123456789"}
    assert rename({"tel-7": "+79123456789"}, preset=HookPreset.TILDA) == {"fields": {"tel-7": "+79123456789"}}


def test_the_first_non_empty_value_wins_and_lists_are_joined():
    assert rename({"name": "", "Имя": "Анна", "Services": ["Доставка", "Сборка"]}) == {
        "name": "Анна", "fields": {"Services": "Доставка, Сборка"}}


def test_a_body_field_named_source_cannot_choose_the_source():
    assert rename({"source": "another-key", "phone": "1"}) == {"phone": "1", "fields": {"source": "another-key"}}


def test_the_probe_and_cookie_parsing():
    assert is_probe({"test": "test"}) and not is_probe({"test": "test", "phone": "1", "name": "x"})
    assert parse_cookies("a=1; b=x=y; ;bad") == {"a": "1", "b": "x=y"}


def test_our_own_format_is_understood_too():
    assert rename({"phone": "1", "fields": {"city": "Kazan", "size": 42}}) == {
        "phone": "1", "fields": {"city": "Kazan", "size": "42"}}
    assert rename({"phone": "1", "fields[city]": "Kazan", "fields.size": "XL", "Город": "Тверь"}) == {
        "phone": "1", "fields": {"city": "Kazan", "size": "XL", "Город": "Тверь"}}


def test_a_preset_name_for_a_field_the_intake_lacks_keeps_the_senders_name():
    assert rename({"phone": "1", "Сумма": "1 500", "Компания": "ООО Ромашка"}) == {
        "phone": "1", "fields": {"Сумма": "1 500", "Компания": "ООО Ромашка"}}
    assert rename({"phone": "1", "Сумма": "1 500", "Компания": "ООО Ромашка"}, known=OURS | {"price", "company"}) == {
        "phone": "1", "price": "1 500", "company": "ООО Ромашка"}


def test_tildas_payment_total_is_the_price_when_the_intake_takes_one():
    payment = '{"orderid": "1234", "amount": "2500", "products": ["Диван=2500"]}'
    assert rename({"phone": "1", "payment": payment}) == {"phone": "1", "fields": {"payment": payment}}
    assert rename({"phone": "1", "payment": payment}, known=OURS | {"price"}) == {
        "phone": "1", "price": "2500", "fields": {"payment": payment}}
