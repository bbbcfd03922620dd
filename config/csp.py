"""The Content-Security-Policy middleware, with the one exception the admin needs.

The admin's theme (django-unfold) builds its pages with Alpine.js, which evaluates its x-data and @click
expressions with `new Function`: the browser allows that only under script-src 'unsafe-eval'. So admin
pages (and only they: signed-in staff, no visitor content rendered as markup) get 'unsafe-eval' on top of
the strict policy; scripts still come only from our own origin, never inline. Public pages (the landing
page, the OAuth result, the API docs, the API) keep the strict policy.
"""

from csp.constants import UNSAFE_EVAL
from csp.middleware import CSPMiddleware, PolicyParts
from django.urls import reverse

ADMIN_SCRIPT_SOURCES = [UNSAFE_EVAL]


def is_admin_path(path: str) -> bool:
    """The request is for a page of the admin site (its log-in page included)."""
    return path.startswith(reverse("admin:index"))


class AdminAwareCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, adding 'unsafe-eval' to script-src on admin pages only."""

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if is_admin_path(request.path):
            update = dict(parts.update or {})
            update["script-src"] = [*update.get("script-src", []), *ADMIN_SCRIPT_SOURCES]
            parts.update = update
        return parts
