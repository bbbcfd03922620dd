"""POST /api/leads/hook/<secret>/: the form-builder webhook (Tilda, WordPress plugins, Make, a backend).

A thin adapter over /api/leads/: the secret in the URL names the source (no `source` field, no
per-IP throttle — one server sends every site visitor's lead — but a per-source rate,
LEAD_HOOK_THROTTLE); the body, JSON or form-encoded with the sender's own field names, is turned
into the intake's input by hook_fields.py; from there it is the intake's validation, idempotency
(the sender's `tranid` or an Idempotency-Key header), storage and answers.
"""

import time

from django.conf import settings
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from .. import attribution
from ..sources import lead_source_get_by_hook_secret
from . import hook_fields
from .admission import IntakeWindow, Limit, parse_rate
from .api import LeadIntakeApi


def hook_window(source) -> IntakeWindow:
    """The source's rate window (LEAD_HOOK_THROTTLE, read on every request), counted like the intake's per-IP one."""
    limit, period = parse_rate(settings.LEAD_HOOK_THROTTLE)
    now = time.time()
    window = int(now // period)
    key = f"leads:hook-throttle:{source.pk}:{period}:{window}"
    return IntakeWindow(limit=Limit(key=key, limit=limit, seconds=period + 1), wait=(window + 1) * period - now)


class LeadHookApi(LeadIntakeApi):
    """Accept a form builder's or backend's post to a source's secret URL; answers as /api/leads/ does."""

    hook_source = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # the body cap; it sets the per-IP window, replaced here
        self.throttle_window = None
        self.hook_source = lead_source_get_by_hook_secret(secret=kwargs.get("secret", ""))
        if self.hook_source is None:
            raise Http404()
        self.throttle_window = hook_window(self.hook_source)

    def source_for_errors(self):
        return self.hook_source

    @extend_schema(
        operation_id="leads_hook_create",
        summary="A form builder's webhook (Tilda, WordPress, Make, a backend)",
        description=(
            "The source is named by the secret in the URL (shown on the source's admin page). JSON or "
            "form-encoded with any field names: Tilda's, Contact Form 7's, Elementor's and WPForms' are "
            "understood, the source's aliases rename the rest, unknown fields are kept as extra fields, "
            "UTM marks are read from Tilda's COOKIES. `test=test` (Tilda's probe) answers 200 and stores "
            "nothing. The sender's `tranid` or an Idempotency-Key header makes a retry answer with the "
            "first lead. Rate: LEAD_HOOK_THROTTLE per source, no per-IP limit."),
        request={"application/json": OpenApiTypes.OBJECT, "application/x-www-form-urlencoded": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("secret", OpenApiTypes.STR, OpenApiParameter.PATH,
                             description="The source's hook secret."),
            OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER,
                             description="The same key for the same source answers with the first lead."),
        ],
        responses={
            200: inline_serializer("LeadHookProbe", {"status": serializers.CharField()}),
            201: inline_serializer("LeadHookAccepted", {"id": serializers.UUIDField(),
                                                        "status": serializers.CharField()}),
            303: OpenApiResponse(description="An HTML form post (Accept: text/html): to the success URL (or, "
                                             "refused, to the error URL)."),
            400: OpenApiResponse(description='{"errors": {field: [messages]}}'),
            404: OpenApiResponse(description="No active source has this secret (rotated, or mistyped)."),
            413: OpenApiResponse(description="Body over 64 KiB."),
            415: OpenApiResponse(description="Not JSON or form-encoded."),
            422: OpenApiResponse(description="The Idempotency-Key or tranid was already used with another submission."),
            429: OpenApiResponse(description="The source's rate (LEAD_HOOK_THROTTLE)."),
        },
    )
    def post(self, request, secret: str):
        body = self.body(request)
        if body is not None and hook_fields.is_probe(body):
            return Response({"status": "test"}, status=status.HTTP_200_OK)
        return super().post(request)

    def intake_input(self, request) -> dict:
        """The intake's input: the sender's body renamed by the source's preset and aliases, the source from the URL."""
        body = self.body(request)
        if body is None:
            return request.data  # the serializer answers "expected a dictionary"
        source = self.hook_source
        table = hook_fields.aliases_for(source.hook_preset, source.hook_aliases)
        values = attribution.lift_first_touch(hook_fields.intake_input(body, known=self.input_names(), table=table))
        values["source"] = source.public_key
        return values

    def idempotency_key_of(self, request) -> str:
        key = super().idempotency_key_of(request)
        if key:
            return key
        return self.checked_key(hook_fields.idempotency_key_of(self.body(request) or {}))

    def body(self, request) -> dict | None:
        """The posted body as one flat dict (None: not a dict), read once per request."""
        if not hasattr(self, "_body"):
            self._body = hook_fields.flatten(request.data)
        return self._body

    @classmethod
    def input_names(cls) -> frozenset[str]:
        """The intake serializer's field names, whatever other fields it has gained: read once per class,
        from the declared fields (building the serializer's fields would copy them all on every request)."""
        names = cls.__dict__.get("_input_names")
        if names is None:
            # The attribution keys are checked in one pass outside the declared fields (leads/attribution.py).
            names = frozenset(cls.InputSerializer._declared_fields) | attribution.HOOK_KEYS
            cls._input_names = names
        return names


@extend_schema(exclude=True)
class LeadHookNoSlashApi(LeadHookApi):
    """The hook without the trailing slash (a mistyped URL in a form builder; not in the API docs)."""
