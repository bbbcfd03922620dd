"""Fuzzing POST /api/leads/: generated and hostile posts get a 4xx at worst, never a 5xx, and nothing accepted is lost.

Two generators, both deterministic (fixed seed, no example database) and bounded, so `make test`
stays fast and repeatable: schemathesis, from the OpenAPI schema the project serves (the
`leads_create` operation, in-process through the WSGI app), and a hypothesis strategy of hostile
values (surrogates, NUL, huge and non-finite numbers, deep nesting, odd shapes) posted as JSON and
as a form.
"""

import json
from urllib.parse import quote

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from config.wsgi import application
from leads.intake.api import LeadIntakeApi
from leads.models import Lead

URL = "/api/leads/"
SEED = 20261130
FUZZ_SETTINGS = settings(max_examples=120, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
FIELD_NAMES = [name for name in LeadIntakeApi.InputSerializer().fields if name != "source"]


@pytest.fixture
def no_throttle(settings):
    """The per-IP limit would answer most examples 429 and hide what the intake does with them."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"lead_intake": None}}


def assert_nothing_lost(answers: list[tuple[int, str | None]]) -> None:
    accepted = {lead_id for status, lead_id in answers if status == 201}
    stored = {str(pk) for pk in Lead.objects.filter(pk__in=accepted).values_list("pk", flat=True)}
    assert accepted == stored, f"answered 201 but not stored: {accepted - stored}"


# ---------------------------------------------------------------------------- schemathesis


@pytest.mark.django_db(transaction=True)  # the WSGI app manages its own connection, as in production
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_posts_to_the_intake_never_get_a_5xx_and_every_201_is_stored(source, no_throttle, mode):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    operation = schema.find_operation_by_id("leads_create")
    answers = []

    @FUZZ_SETTINGS
    @seed(SEED)
    @given(case=operation.as_strategy(generation_mode=mode), real_source=st.booleans(), real_phone=st.booleans())
    def post(case, real_source, real_phone):
        # Reach past the source and contact checks as often as not; the rest of the body stays generated.
        if real_source and isinstance(case.body, dict):
            case.body["source"] = source.public_key
            if real_phone:
                case.body["phone"] = "+79123456789"
        response = case.call()
        assert response.status_code < 500, (case.body, case.headers, response.text)
        answers.append((response.status_code, response.json().get("id") if response.status_code == 201 else None))

    post()
    assert_nothing_lost(answers)
    assert len(answers) >= 50
    if mode == GenerationMode.POSITIVE:
        assert any(status == 201 for status, _ in answers)  # the fuzzer did get leads through


# ---------------------------------------------------------------------------- hostile values

HOSTILE_CHARACTERS = st.one_of(
    st.characters(),  # any code point but surrogates
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
    st.sampled_from(["\x00", "\x1f", "\x7f", "\u2028", "\u202e", "\ufeff", "\uffff", "\U0010ffff", "\U0001f600"]),
)
HOSTILE_TEXT = st.text(HOSTILE_CHARACTERS, max_size=40)
SCALARS = st.one_of(
    st.none(), st.booleans(), HOSTILE_TEXT,
    st.integers(min_value=-(10**300), max_value=10**300),
    st.floats(allow_nan=False),  # ±inf too (JSON 1e999); NaN is posted as a literal below
    st.sampled_from(["+79123456789", "8 (912) 345-67-89", "ivan@example.com", "IVAN@EXAMPLE.COM", ""]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner,
                                                                                            max_size=3),
                      max_leaves=8)
EXTRA_FIELDS = st.one_of(VALUES, st.dictionaries(HOSTILE_TEXT, VALUES, max_size=4))


def _json_text(value) -> str:
    """JSON as a sender might write it: a lone surrogate becomes the escape \\udXXX, infinity 1e999."""
    return json.dumps(value).replace("Infinity", "1e999")


@pytest.mark.django_db
def test_hostile_values_are_answered_201_or_400_and_every_201_is_stored(source, no_throttle):
    client = Client()
    answers = []

    @FUZZ_SETTINGS
    @seed(SEED)
    @given(
        values=st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=6),
        contact=st.sampled_from([{"phone": "8 (912) 345-67-89"}, {"email": "Ivan@Example.com"}, {}]),
        extra=EXTRA_FIELDS,
        source_key=st.one_of(st.just(source.public_key), HOSTILE_TEXT),
        wrap=st.sampled_from(["object", "deep", "not-an-object", "nan"]),
        as_form=st.booleans(),
    )
    def post(values, contact, extra, source_key, wrap, as_form):
        payload = {**values, **contact, "fields": extra, "source": source_key}
        before = Lead.objects.count()
        if as_form:
            # Form posts carry text only; a surrogate reaches the server as bytes that are no UTF-8.
            pairs = [(f"fields[{key}]" if isinstance(extra, dict) and key in extra else key, value)
                     for key, value in [*payload.items(), *(extra.items() if isinstance(extra, dict) else [])]
                     if key != "fields"]
            body = "&".join(f"{quote(str(key), errors='surrogatepass')}={quote(str(value), errors='surrogatepass')}"
                            for key, value in pairs)
            response = client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
        else:
            text = {"object": lambda: _json_text(payload),
                    "deep": lambda: _json_text(payload)[:-1] + ', "fields": ' + "[" * 3000 + "]" * 3000 + "}",
                    "not-an-object": lambda: _json_text([payload]),
                    "nan": lambda: _json_text(payload)[:-1] + ', "name": NaN}'}[wrap]()
            response = client.post(URL, data=text.encode("utf-8", "surrogatepass"), content_type="application/json")
        assert response.status_code in (201, 400), (payload, response.status_code, response.content[:500])
        body = response.json()
        if response.status_code == 400:
            assert body["errors"] and all(isinstance(messages, list) and all(isinstance(m, str) for m in messages)
                                          for messages in body["errors"].values())
            assert Lead.objects.count() == before  # a refused post stores nothing
        answers.append((response.status_code, body.get("id")))

    post()
    assert_nothing_lost(answers)
    assert any(status == 201 for status, _ in answers) and any(status == 400 for status, _ in answers)
