"""POST /api/leads/, the public lead intake: its input, validated and answered at once — it never calls amoCRM.

Read `LeadIntakeApi` top to bottom: the body size, the input serializer (fields built once per
thread, see ThreadFieldsSerializer), the Origin check (cors.py), then `lead_create` (admission.py),
which counts the sender, catches a double click and stores the lead in one Redis call and one INSERT.
"""

import re
import threading

from django.core.validators import EmailValidator
from django.http import HttpResponseRedirect
from django.utils import translation
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.response import Response
from rest_framework.utils.serializer_helpers import BindingDict
from rest_framework.views import APIView

from config.net import client_ip
from monitoring import metrics

from .. import attribution, payloads
from ..sources import lead_source_get_active
from . import admission
from .admission import IntakeWindow
from .cors import check_origin
from .html_errors import html_error, wants_html
from .price import Price

MAX_BODY_BYTES = 64 * 1024
# Hidden in the embed snippet: people leave it empty, form-filling bots do not.
HONEYPOT_FIELD = "website"
MAX_EXTRA_FIELDS = 50
EXTRA_FIELD_KEY = re.compile(r"^fields(?:\[([^\]]+)\]|\.(.+))$")
# Text PostgreSQL cannot store: NUL, and lone UTF-16 surrogates (JSON's "\ud800" escape parses into one).
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_thread_fields = threading.local()  # the input serializer's fields, one set per thread


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB."
    default_code = "payload_too_large"


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = {"Idempotency-Key": [_(
        "This key was already used for a different submission to this source, which is stored; this one was not. "
        "Send a new key with every new submission, and the same body with the same key when retrying.")]}
    default_code = "idempotency_key_reused"


class JsonBody(JSONParser):
    """DRF's JSON parser, except that nesting too deep for Python's parser is a 400 like any other bad JSON."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply.") from None


class JsonAnswers(DefaultContentNegotiation):
    """Always answer JSON: a plain HTML form sends `Accept: text/html` and must not get a 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema_field(OpenApiTypes.STR)
class Text(serializers.Field):
    """An optional plain text value: trimmed, length-capped, absent or null → "".

    What CharField does, without its chain of validator objects per field: the intake validates
    a dozen of these on every request.
    """

    default_error_messages = {
        "invalid": _("Not a valid string."),
        "max_length": _("Ensure this field has no more than {max_length} characters."),
        "null_characters": _("Null characters are not allowed."),
        "surrogate_characters": _("Surrogate characters are not allowed: U+{code_point:X}."),
    }

    def __init__(self, max_length: int, *, trim: bool = True):
        super().__init__(required=False, allow_null=True, default="")
        self.max_length, self.trim = max_length, trim

    def to_internal_value(self, data) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            self.fail("invalid")
        text = str(data).strip() if self.trim else str(data)
        if len(text) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        if not text.isascii() or "\x00" in text:  # the common case, ASCII without NUL, costs no regex
            found = UNSTORABLE.search(text)
            if found is not None:
                if found.group() == "\x00":
                    self.fail("null_characters")
                self.fail("surrogate_characters", code_point=ord(found.group()))
        return text

    def to_representation(self, value):
        return value


class ThreadFieldsSerializer(serializers.Serializer):
    """A serializer whose fields are built once per thread instead of once per instance.

    DRF deep-copies and binds a new set of fields for every serializer, which costs the hot intake
    more than its INSERT. Each thread builds the set once and lends it to one serializer at a time:
    plain fields keep nothing between validations but their parent, which is set on every loan.
    """

    @cached_property
    def fields(self):
        lent = _thread_fields.__dict__.setdefault("by_class", {})
        fields = lent.get(type(self))
        if fields is None:
            fields = BindingDict(self)
            for name, field in self.get_fields().items():
                fields[name] = field
            lent[type(self)] = fields
        else:
            fields.serializer = self
            for field in fields.values():
                field.parent = self
        return fields


def _input_of(request) -> dict:
    """The posted values as one dict. Form posts may send `fields[city]` or `fields.city`, and a form
    builder that cannot add a hidden field may name the source in the URL (`?source=KEY`)."""
    data = request.data
    if hasattr(data, "getlist"):  # form-encoded: last value wins, bracket or dotted keys build `fields`
        flat, extra = {}, {}
        for key in data:
            match = EXTRA_FIELD_KEY.match(key)
            if match:
                extra[match.group(1) or match.group(2)] = data.getlist(key)[-1]
            else:
                flat[key] = data.getlist(key)[-1]
        if extra:
            flat["fields"] = extra
        data = flat
    elif not isinstance(data, dict):
        return data  # the serializer answers "expected a dictionary"
    data = attribution.lift_first_touch(data)
    if "source" not in data and "source" in request.query_params:
        data = {**data, "source": request.query_params["source"]}
    return data


ATTRIBUTION_ID = Text(attribution.ID_MAX_LENGTH)  # validates each click or client id (never bound)
FIRST_TOUCH = attribution.FirstTouch(UNSTORABLE)


def _attribution(data) -> tuple[dict, dict]:
    """(values, errors) of the post's click and client ids and first touch (leads/attribution.py)."""
    if not isinstance(data, dict) or attribution.INPUT_KEYS.isdisjoint(data):
        return {}, {}
    values, errors = {}, {}
    for name, field in [*((name, ATTRIBUTION_ID) for name in attribution.ID_FIELDS), ("first_touch", FIRST_TOUCH)]:
        raw = data.get(name)
        if raw is None:
            continue
        try:
            values[name] = field.to_internal_value(raw)
        except serializers.ValidationError as exc:
            errors[name] = exc.detail
    return values, errors


class LeadIntakeApi(APIView):
    """Accept a website form: JSON or form-encoded, answer 201 {"id", "status"} at once (or 303 for HTML forms)."""

    authentication_classes: list = []
    permission_classes: list = []
    # The per-IP throttle counts each request once: a valid post in lead_create, in the same Redis call
    # as its double-click check; a request refused before that in handle_exception (see admission.py).
    throttle_classes: list = []
    throttle_window: IntakeWindow | None = None
    parser_classes = [JsonBody, FormParser]
    content_negotiation_class = JsonAnswers

    class InputSerializer(ThreadFieldsSerializer):
        source = serializers.CharField(max_length=64)
        name = Text(255)
        phone = Text(64)
        email = Text(254)
        message = Text(5000, trim=False)
        price = Price()
        company = Text(255)
        utm_source = Text(255)
        utm_medium = Text(255)
        utm_campaign = Text(255)
        utm_term = Text(255)
        utm_content = Text(255)
        referrer = Text(2000)
        page_url = Text(2000)
        fields = serializers.DictField(
            child=serializers.CharField(max_length=1000, allow_blank=True, allow_null=True), required=False,
            default=dict,
        )
        website = Text(5000)

        class Meta:
            ref_name = "LeadIntake"  # the OpenAPI component's name

        def to_internal_value(self, data):
            """The declared fields, then the attribution (click and client ids, first touch) in one pass.

            Eleven more declared fields would cost every post DRF's per-field round even when absent (a third
            more work for the serializer); `_attribution` costs one set check when the post has none.
            """
            extra, problems = _attribution(data)
            try:
                values = super().to_internal_value(data)
            except serializers.ValidationError as exc:
                if problems and isinstance(exc.detail, dict):
                    exc.detail.update(problems)
                raise
            if problems:
                raise serializers.ValidationError(problems)
            values.update(extra)
            return values

        def validate_source(self, value):
            source = lead_source_get_active(public_key=value.strip())
            if source is None:
                raise serializers.ValidationError(_("Unknown or inactive lead source."))
            return source

        def validate_phone(self, value):
            if not value:
                return ""
            phone = payloads.normalize_phone(value)
            if phone is None:
                raise serializers.ValidationError(_("Enter a valid phone number."))
            self.context["phone_raw"] = value
            return phone

        def validate_email(self, value):
            if not value:
                return ""
            email = payloads.normalize_email(value)
            EmailValidator(message=_("Enter a valid email address."))(email)
            return email

        def validate_fields(self, value):
            if len(value) > MAX_EXTRA_FIELDS:
                raise serializers.ValidationError(_("At most %(count)d fields.") % {"count": MAX_EXTRA_FIELDS})
            if any(len(str(key)) > 100 for key in value):
                raise serializers.ValidationError(_("Field names are at most 100 characters."))
            if any(UNSTORABLE.search(str(key)) for key in value):
                raise serializers.ValidationError(_("Field names may not contain null or surrogate characters."))
            return {str(key): item for key, item in value.items() if item is not None}

        def validate(self, attrs):
            attrs = {key: ("" if value is None and key != "price" else value) for key, value in attrs.items()}
            if not attrs.get("phone") and not attrs.get("email"):
                missing = _("Give a phone number or an email address.")
                raise serializers.ValidationError({"phone": [missing], "email": [missing]})
            attrs["phone_raw"] = self.context.get("phone_raw", "")
            return attrs

    class DocumentedInput(InputSerializer):
        """The input as the API docs show it: the attribution `_attribution` validates, as declared fields."""

        gclid = Text(attribution.ID_MAX_LENGTH)
        gbraid = Text(attribution.ID_MAX_LENGTH)
        wbraid = Text(attribution.ID_MAX_LENGTH)
        yclid = Text(attribution.ID_MAX_LENGTH)
        fbclid = Text(attribution.ID_MAX_LENGTH)
        msclkid = Text(attribution.ID_MAX_LENGTH)
        vk_clickid = Text(attribution.ID_MAX_LENGTH)
        ym_client_id = Text(attribution.ID_MAX_LENGTH)
        ga_client_id = Text(attribution.ID_MAX_LENGTH)
        roistat_visit = Text(attribution.ID_MAX_LENGTH)
        first_touch = attribution.FirstTouch(UNSTORABLE)

        class Meta:
            ref_name = "LeadIntake"

    def dispatch(self, request, *args, **kwargs):
        # A plain HTML form's visitor reads the errors: in their browser's language (Accept-Language).
        if wants_html(request):
            with translation.override(translation.get_language_from_request(request)):
                return super().dispatch(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        # Before parsing, throttling or anything else: refuse big bodies by header, then by what was read.
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > MAX_BODY_BYTES or len(request._request.body) > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        self.throttle_window = IntakeWindow.of(request)
        super().initial(request, *args, **kwargs)

    def handle_exception(self, exc):
        # A request refused before lead_create counted it is counted now; over the limit, 429 wins.
        window, self.throttle_window = self.throttle_window, None
        if window is not None and not window.count():
            exc = exceptions.Throttled(wait=window.wait)
        metrics.lead_refused_by(exc)
        response = super().handle_exception(exc)
        if wants_html(self.request) and isinstance(getattr(response, "data", None), dict) \
                and "errors" in response.data:
            return html_error(self.request, source=self.source_for_errors(), status=response.status_code,
                              errors=response.data["errors"])
        return response

    def source_for_errors(self):
        """The source a refused post named, if it parsed and names an active one (its error URL is used)."""
        try:
            key = self.request.data.get("source") or self.request.query_params.get("source")
        except Exception:  # noqa: BLE001 — an unparsable body names no source
            return None
        return lead_source_get_active(public_key=key.strip()) if isinstance(key, str) else None

    @extend_schema(
        operation_id="leads_create",
        request={"application/json": DocumentedInput, "application/x-www-form-urlencoded": DocumentedInput},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER,
                                     description="The same key for the same source answers with the first lead.")],
        responses={
            201: inline_serializer("LeadAccepted", {"id": serializers.UUIDField(), "status": serializers.CharField()}),
            303: OpenApiResponse(description="An HTML form post (Accept: text/html): to the success URL, or when "
                                             "refused to the source's error URL with lead_errors=<fields>."),
            400: OpenApiResponse(description='{"errors": {field: [messages]}}; for a refused HTML form post '
                                             "without an error URL, a short HTML page listing what to fix."),
            403: OpenApiResponse(description="A browser Origin the source does not allow."),
            413: OpenApiResponse(description="Body over 64 KiB."),
            415: OpenApiResponse(description="Not JSON or form-encoded."),
            422: OpenApiResponse(description="The Idempotency-Key was already used with a different submission."),
            429: OpenApiResponse(description="Per-IP throttle."),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=self.intake_input(request), context={})
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        source, spam = values.pop("source"), bool(values.pop(HONEYPOT_FIELD).strip())
        check_origin(request, source)
        idempotency_key = self.idempotency_key_of(request)
        window, self.throttle_window = self.throttle_window, None  # lead_create counts it from here
        try:
            accepted = admission.lead_create(
                source=source, data=values, ip=client_ip(request), user_agent=request.headers.get("user-agent", ""),
                idempotency_key=idempotency_key, spam=spam, rate_limit=window.limit if window else None,
            )
        except admission.LeadRateLimited:
            raise exceptions.Throttled(wait=window.wait) from None
        except admission.IdempotencyKeyReused:
            raise IdempotencyKeyReused() from None
        if source.success_url and "text/html" in request.headers.get("accept", ""):
            return HttpResponseRedirect(source.success_url, status=status.HTTP_303_SEE_OTHER)
        return Response({"id": str(accepted.id), "status": accepted.status}, status=status.HTTP_201_CREATED)

    def intake_input(self, request) -> dict:
        """The posted values the input serializer validates (the hook renames a form builder's fields here)."""
        return _input_of(request)

    def idempotency_key_of(self, request) -> str:
        """The sender's Idempotency-Key header, checked; "" without one."""
        return self.checked_key(request.headers.get("idempotency-key", ""))

    @staticmethod
    def checked_key(key: str) -> str:
        key = key.strip()
        if len(key) > 255:
            raise exceptions.ValidationError({"Idempotency-Key": ["At most 255 characters."]})
        if UNSTORABLE.search(key):
            raise exceptions.ValidationError({"Idempotency-Key": ["Null or surrogate characters are not allowed."]})
        return key


@extend_schema(exclude=True)
class LeadIntakeNoSlashApi(LeadIntakeApi):
    """The same endpoint without the trailing slash (for mistyped form-builder URLs; not in the API docs)."""
