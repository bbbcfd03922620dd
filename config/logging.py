"""JSON log lines on stdout with the request id; values under secret-looking keys and URL secrets are redacted."""

import json
import logging
import re
from datetime import UTC, datetime

from .requestid import request_id_var

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}
# Keys whose values never reach a log line, wherever they appear in `extra` (nested too).
# Callers should not pass secrets at all (see the sync log's own redaction); this is the backstop.
_SECRET_KEY = re.compile(r"(?i)(secret|token|password|passwd|authorization|cookie|api[-_]?key|^code$)")
REDACTED = "[redacted]"

# Paths whose last segment is a credential: the amoCRM webhook key and the form-builder hook secret.
# Separators may be percent-encoded (a URL inside a form body). The secret stops at anything that
# cannot be part of a path segment, and never swallows a quote or backslash, so masking a JSON
# line leaves it valid JSON; a masked value ("…abcd") is left as it is, so masking twice changes nothing.
_SLASH = r"(?:/|%2[fF])"
_URL_SECRET = re.compile(
    rf"({_SLASH}api{_SLASH}(?:webhooks{_SLASH}amocrm|leads{_SLASH}hook){_SLASH})"
    r"((?:(?!%2[fF])[^/?#&\s\"'\\<>…])+)"
)


def _mask(match: re.Match) -> str:
    secret = match.group(2)
    keep = min(4, len(secret) // 4)  # a short value keeps less, so a mask never reveals most of it
    return f"{match.group(1)}…{secret[-keep:] if keep else ''}"


def mask_url_secrets(text: str) -> str:
    """The text with every URL secret (webhook key, lead hook secret) cut to "…" and at most its last 4 characters.

    The one masking function for everything that logs or stores a path or URL: log lines (the
    JSON formatter masks every line whole), gunicorn's access line, the sync log's bodies and errors.
    """
    if "api" not in text:  # the cheap common case: no path of ours at all
        return text
    return _URL_SECRET.sub(_mask, text)


def redact(value, depth: int = 0):
    """A copy of dicts/lists with the values of secret-looking keys replaced."""
    if depth > 6:
        return value
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and _SECRET_KEY.search(key) else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item, depth + 1) for item in value]
    return value


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            # django.request logs after the middleware has returned, but passes the request along.
            request = getattr(record, "request", None)
            record.request_id = getattr(request, "request_id", None) or request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        extra = {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}
        request = extra.pop("request", None)  # django.request passes the HttpRequest, runserver its socket
        if hasattr(request, "path") and hasattr(request, "method"):
            extra.setdefault("method", request.method)
            extra.setdefault("path", request.path)  # without the query string, which may carry a code
        payload.update(redact(extra))
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        # Masked as a whole: the message ("Not Found: /api/webhooks/amocrm/<key>/", runserver's request
        # line), the path extra and any traceback that quotes a URL.
        return mask_url_secrets(json.dumps(payload, default=str, ensure_ascii=False))
