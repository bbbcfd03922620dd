"""JSON log lines on stdout with the request id; values under secret-looking keys are redacted."""

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
        return json.dumps(payload, default=str, ensure_ascii=False)
