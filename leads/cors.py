"""CORS per lead source: a browser Origin is allowed when a source lists it (nothing is allowed globally).

django-cors-headers asks this receiver for requests to the intake URL. A preflight names no source,
so it passes when any active source lists the origin; the POST itself is then checked against the
posted source's own list by the view, which answers 403 for an origin that source does not allow
and records its decision on the request so the response headers agree with it.
"""

import re

from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.dispatch import receiver

from . import services

# Set by the intake view: the posted source's verdict on the request's Origin.
ORIGIN_VERDICT_ATTR = "_lead_source_allows_origin"


@receiver(check_request_enabled, dispatch_uid="leads.cors.allow_lead_source_origins")
def allow_lead_source_origins(sender, request, **kwargs) -> bool:
    if not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    origin = request.headers.get("origin")
    if not origin:
        return False
    verdict = getattr(request, ORIGIN_VERDICT_ATTR, None)
    if verdict is not None:
        return verdict
    return services.lead_sources_allow_origin(origin=origin)
