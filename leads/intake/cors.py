"""CORS per lead source: which browser Origin may post to which source (nothing is allowed globally).

django-cors-headers asks `allow_lead_source_origins` about requests to the intake URL. A preflight
names no source, so it passes when any active source lists the origin. The POST itself is then
checked by the endpoint against the posted source's own list (`check_origin`), which answers 403 for
an origin that source does not allow and records its verdict on the request, so the response
headers agree with it. A request without Origin is server to server: there is no browser to protect.
"""

import re

from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.dispatch import receiver
from rest_framework import exceptions

from ..models import LeadSource
from ..sources import active_origins, normalize_origin

# Set by `check_origin`: the posted source's verdict on the request's Origin.
ORIGIN_VERDICT_ATTR = "_lead_source_allows_origin"


def lead_source_allows_origin(*, source: LeadSource, origin: str | None) -> bool:
    """A request without Origin is server-to-server (no browser to protect); a browser's must be listed."""
    if not origin:
        return True
    return normalize_origin(origin) in {normalize_origin(item) for item in source.allowed_origins or []}


def check_origin(request, source: LeadSource) -> None:
    """403 unless the posted source allows the request's Origin; the verdict is kept for the CORS headers."""
    allowed = lead_source_allows_origin(source=source, origin=request.headers.get("origin"))
    setattr(request._request, ORIGIN_VERDICT_ATTR, allowed)
    if not allowed:
        raise exceptions.PermissionDenied(
            f"This origin may not post to this lead source: add {request.headers['origin']} to its allowed "
            "origins in the admin.")


@receiver(check_request_enabled, dispatch_uid="leads.intake.cors.allow_lead_source_origins")
def allow_lead_source_origins(sender, request, **kwargs) -> bool:
    """django-cors-headers' question: may this request's Origin read the answer?"""
    if not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    origin = request.headers.get("origin")
    if not origin:
        return False
    verdict = getattr(request, ORIGIN_VERDICT_ATTR, None)
    if verdict is not None:
        return verdict
    return normalize_origin(origin) in active_origins()
