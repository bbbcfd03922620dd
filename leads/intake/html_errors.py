"""Plain HTML forms (no JavaScript): a post the intake refuses is answered with HTML, never JSON.

A browser that posts a form-encoded body and accepts text/html gets, instead of the API's JSON error,
a 303 to the source's error URL (with `lead_errors=phone,email` naming what to fix) or, without one,
a short page in the visitor's language (Accept-Language) listing what to fix, with the same status.
"""

from urllib.parse import urlencode, urlsplit, urlunsplit

from django.http import HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# The names a visitor knows our fields by; anything else is shown as the form sent it.
FIELD_LABELS = {
    "name": _("Name"),
    "phone": _("Phone"),
    "email": _("Email"),
    "message": _("Message"),
    "source": _("Form"),
    "fields": _("Extra fields"),
    "Idempotency-Key": _("Submission id"),
}
GENERAL = ("detail", "non_field_errors")


def wants_html(request) -> bool:
    """A browser's plain form post: form-encoded (or multipart) and HTML accepted."""
    content_type = request.META.get("CONTENT_TYPE", "").lower()
    return content_type.startswith(FORM_TYPES) and "text/html" in request.META.get("HTTP_ACCEPT", "")


def html_error(request, *, source, status: int, errors: dict[str, list[str]]) -> HttpResponse:
    """The HTML answer to a refused plain form post: to the source's error URL, or a page listing what to fix."""
    if source is not None and source.error_url:
        return HttpResponseRedirect(_with_error_names(source.error_url, errors), status=303)
    problems = [
        {"label": None if key in GENERAL else FIELD_LABELS.get(key, key), "messages": messages}
        for key, messages in errors.items()
    ]
    back = request.META.get("HTTP_REFERER", "")
    if urlsplit(back).scheme not in ("http", "https"):
        back = ""
    html = render_to_string("leads/intake_error.html", {"problems": problems, "back": back}, request=None)
    return HttpResponse(html, status=status, content_type="text/html; charset=utf-8")


def _with_error_names(url: str, errors: dict) -> str:
    parts = urlsplit(url)
    names = ",".join(key for key in errors if key not in GENERAL)
    query = "&".join(item for item in (parts.query, urlencode({"lead_errors": names or "form"})) if item)
    return urlunsplit(parts._replace(query=query))
