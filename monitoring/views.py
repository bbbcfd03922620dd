"""GET /api/status/ (JSON health per account, for people and uptime checks) and GET /metrics (Prometheus).

Both are for machines outside the admin, so each has its own secret: `Authorization: Bearer
$STATUS_TOKEN` (or a staff session) and `Authorization: Bearer $METRICS_TOKEN` (or an address in
METRICS_ALLOWED_IPS). Tokens are compared in constant time; without a configured token nobody gets
in by token.
"""

import ipaddress
import secrets

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from config.net import client_ip

from .collectors import AllProcessesCollector, StateCollector
from .selectors import status_overview


def bearer_token(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an unset expected token matches nothing."""
    if not given or not expected:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


class StatusClient:
    """Whoever presented STATUS_TOKEN: a monitor, not a user."""

    is_authenticated = True
    is_staff = False


class StatusTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        given = bearer_token(request)
        if given is None:
            return None
        if not token_matches(given, settings.STATUS_TOKEN):
            raise exceptions.AuthenticationFailed("The status token is not valid.")
        return StatusClient(), None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="status"'


class StatusTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes STATUS_TOKEN (registered by being defined)."""

    target_class = StatusTokenAuthentication
    name = "statusToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The value of STATUS_TOKEN."}


class IsStatusClientOrStaff(BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        return isinstance(user, StatusClient) or bool(user and user.is_authenticated and user.is_staff)


class StatusApi(APIView):
    """The integration's health per account, and overall: ok, degraded or down (rules in selectors.status_overview)."""

    authentication_classes = [StatusTokenAuthentication, SessionAuthentication]
    permission_classes = [IsStatusClientOrStaff]

    @extend_schema(operation_id="status", responses={200: OpenApiResponse(description="Status per account"),
                                                     401: None, 403: None})
    def get(self, request):
        response = Response(status_overview())
        response["Cache-Control"] = "no-store"
        return response


def metrics_allowed(request) -> bool:
    """METRICS_TOKEN as a Bearer token, or the client's address inside one of METRICS_ALLOWED_IPS' networks."""
    if token_matches(bearer_token(request), settings.METRICS_TOKEN):
        return True
    address = client_ip(request)
    if not address or not settings.METRICS_ALLOWED_IPS:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_IPS)


@never_cache
@require_GET
def metrics_view(request):
    if not metrics_allowed(request):
        response = HttpResponse("Forbidden: send Authorization: Bearer $METRICS_TOKEN, or scrape from an address "
                                "in METRICS_ALLOWED_IPS.\n", status=403, content_type="text/plain; charset=utf-8")
        if bearer_token(request) is None:
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AllProcessesCollector())
    registry.register(StateCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
