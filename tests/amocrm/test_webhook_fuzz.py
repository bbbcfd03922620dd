"""Property tests (hypothesis): no webhook body, however broken or hostile, escapes the parser or the processing.

Deterministic (`derandomize`, no example database) and bounded, so `make test` stays fast and stable.
"""

import json
import re
from urllib.parse import quote

import pytest
import responses
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amocrm.models import Account, WebhookEvent
from amocrm.webhooks.parser import (
    WebhookParseError,
    extract_delivery,
    item_int,
    parse_body,
)
from amocrm.webhooks.processing import webhook_event_process
from tests.amocrm.webhook_items import item_custom_fields, item_modified_at, item_tags
from tests.factories import HOST, make_account
from tests.sales.builders import AMO_ACCOUNT_ID, FORM, api_deal

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CONTENT_TYPES = st.sampled_from([None, "", FORM, f"{FORM}; charset=utf-8", "application/json", "text/plain",
                                 "application/vnd.amocrm+json", "multipart/form-data"])

# --- Bodies -------------------------------------------------------------------------------------

NAMES = st.sampled_from(["leads", "contacts", "tasks", "account", "companies", "catalogs", "", "lea[ds", "leads]",
                         "id", "0", "\x00", "ü", "\ud800"])
FIELDS = st.sampled_from(["id", "status_id", "old_status_id", "pipeline_id", "price", "last_modified", "updated_at",
                          "date_create", "created_at", "responsible_user_id", "account_id", "type", "name",
                          "custom_fields", "tags", "values", "value", "enum", "subdomain", ""])
ACTIONS = st.sampled_from(["add", "update", "status", "responsible", "delete", "restore", "note", "frobnicate", ""])
NUMBERS = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str),
                    st.sampled_from(["142", "143", "9001", "0", "-1", "1e999", "NaN", "01", " 7 ", "99999999999999",
                                     "1700001000", "2023-11-14T22:30:00Z", "9999-12-31T23:59:59-14:00", ""]))
VALUES = st.one_of(NUMBERS, st.text(max_size=20), st.sampled_from(["%", "%zz", "%ED%A0%80", "+", "&", "="]))
SEGMENT = st.one_of(FIELDS, ACTIONS, st.integers(min_value=0, max_value=3).map(str), st.just(""), NAMES)


@st.composite
def bracket_keys(draw) -> str:
    """A PHP-style key such as leads[status][0][custom_fields][1][values][0][enum], sometimes malformed."""
    segments = draw(st.lists(SEGMENT, max_size=12))
    key = draw(NAMES) + "".join(f"[{segment}]" for segment in segments)
    if draw(st.booleans()):
        cut = draw(st.integers(min_value=0, max_value=len(key)))
        key = key[:cut]
    return key


@st.composite
def form_bodies(draw) -> bytes:
    pairs = draw(st.lists(st.tuples(bracket_keys(), VALUES), max_size=30))
    encode = draw(st.booleans())
    pieces = []
    for key, value in pairs:
        key = quote(key, safe="", errors="surrogatepass") if encode else key
        value = quote(value, safe="", errors="surrogatepass") if encode else value
        pieces.append(draw(st.sampled_from([f"{key}={value}", key, f"={value}", f"{key}=={value}"])))
    body = "&".join(pieces).encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        body = body[:draw(st.integers(min_value=0, max_value=len(body)))]  # truncated in transit
    return body


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), NUMBERS)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.one_of(FIELDS, ACTIONS, NAMES, st.text(max_size=5)), children,
                                                    max_size=4)), max_leaves=40)


@st.composite
def json_bodies(draw) -> bytes:
    value = draw(st.one_of(JSON_VALUES, st.dictionaries(NAMES, JSON_VALUES, max_size=4)))
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        text = text.replace("0.0", "1e999").replace("1", "NaN", 1)
    body = text.encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        body = b"[" * draw(st.integers(min_value=0, max_value=3000)) + body
    return body


ANY_BODY = st.one_of(st.binary(max_size=3000), form_bodies(), json_bodies())


# --- The parser -------------------------------------------------------------------------------


@FUZZ
@given(body=ANY_BODY, content_type=CONTENT_TYPES)
def test_the_parser_raises_nothing_but_webhook_parse_error(body, content_type):
    try:
        parsed = parse_body(body, content_type)
    except WebhookParseError:
        return
    assert isinstance(parsed, dict) and parsed
    delivery = extract_delivery(parsed)
    for item in delivery.items:
        assert isinstance(item.label, str)
        assert item.entity_id is None or 0 < item.entity_id < 2**63
        item_int(item, "status_id")
        item_modified_at(item)
        item_custom_fields(item)
        item_tags(item)


@FUZZ
@given(body=form_bodies())
def test_a_form_body_parses_to_strings_lists_and_dicts_only(body):
    try:
        parsed = parse_body(body, FORM)
    except WebhookParseError:
        return

    def check(node):
        if isinstance(node, dict):
            assert all(isinstance(key, str) for key in node)
            for child in node.values():
                check(child)
        elif isinstance(node, list):
            for child in node:
                check(child)
        else:
            assert isinstance(node, str)

    check(parsed)


# --- The receiver and the processing, together ------------------------------------------------------

END_STATES = {WebhookEvent.State.PROCESSED, WebhookEvent.State.IGNORED, WebhookEvent.State.FAILED,
              WebhookEvent.State.REJECTED, WebhookEvent.State.DUPLICATE}


@st.composite
def deliveries(draw) -> bytes:
    """Mostly-plausible deal deliveries with hostile values, for the processing's deeper paths."""
    pairs = []
    for index in range(draw(st.integers(min_value=0, max_value=6))):
        action = draw(st.sampled_from(["add", "update", "status", "responsible", "delete", "restore", "note"]))
        prefix = f"leads[{action}][{index}]"
        pairs.append((f"{prefix}[id]", draw(st.one_of(st.integers(min_value=1, max_value=40).map(str), NUMBERS))))
        for name in draw(st.lists(st.sampled_from(["status_id", "old_status_id", "pipeline_id", "price",
                                                   "last_modified", "updated_at", "responsible_user_id"]),
                                  max_size=7, unique=True)):
            pairs.append((f"{prefix}[{name}]", draw(NUMBERS)))
        if draw(st.booleans()):
            pairs.append((f"{prefix}[name]", draw(st.text(max_size=10))))
    pairs.append(("account[id]", draw(st.sampled_from([str(AMO_ACCOUNT_ID), str(AMO_ACCOUNT_ID), "", "x", "7"]))))
    body = "&".join(f"{quote(k, safe='')}={quote(v, safe='', errors='surrogatepass')}" for k, v in pairs)
    return body.encode()


def _deal(request):
    """GET /api/v4/leads/{id}: a won deal, or amoCRM's 204 for every third id; 404 for what is no id."""
    raw = request.url.split("?")[0].rsplit("/", 1)[1]
    if not raw.isdigit() or int(raw) <= 0:
        return 404, {}, json.dumps({"title": "Not Found", "status": 404})
    deal_id = int(raw)
    return (200, {}, json.dumps(api_deal(deal_id))) if deal_id % 3 else (204, {}, "")


def _deals(request):
    ids = [int(value) for value in re.findall(r"filter%5Bid%5D%5B%5D=(\d+)", request.url)]
    leads = [api_deal(deal_id, status_id=142 if deal_id % 2 else 143) for deal_id in ids if deal_id % 3]
    return (200, {}, json.dumps({"_embedded": {"leads": leads}, "_links": {}})) if leads else (204, {}, "")


@pytest.mark.django_db
@settings(FUZZ, max_examples=80, suppress_health_check=[*FUZZ.suppress_health_check,
                                                         HealthCheck.function_scoped_fixture])
@given(body=st.one_of(deliveries(), ANY_BODY), content_type=CONTENT_TYPES)
def test_any_body_with_a_valid_key_is_stored_answered_and_ends_in_a_visible_state(body, content_type):
    # Every example runs in the test's one transaction: the account is made by the first.
    account = Account.objects.filter(name="Fuzzed").first() or make_account(
        name="Fuzzed", host=HOST, amocrm_account_id=AMO_ACCOUNT_ID)
    with override_settings(AMOCRM_RATE_LIMIT=100_000), responses.RequestsMock(
            assert_all_requests_are_fired=False) as amo:
        amo.add_callback(responses.GET, re.compile(rf"{re.escape(HOST)}/api/v4/leads/[^/?]+"), callback=_deal)
        amo.add_callback(responses.GET, f"{HOST}/api/v4/leads", callback=_deals)

        before = WebhookEvent.objects.count()
        response = Client().post(account.webhook_path, data=body, content_type=content_type or "")

        assert response.status_code in (200, 403), response.content
        assert WebhookEvent.objects.count() == before + 1
        event = WebhookEvent.objects.latest("pk")
        assert bytes(event.body) == body
        if response.status_code == 403:
            assert event.state == WebhookEvent.State.REJECTED and event.error
            return
        state = webhook_event_process(event_id=event.pk)

    event.refresh_from_db()
    assert state == event.state and state in END_STATES, (state, event.error)
    if state in (WebhookEvent.State.FAILED, WebhookEvent.State.REJECTED):
        assert event.error
