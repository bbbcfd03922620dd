"""The current request id, carried from the web request into logs and Celery tasks."""

import contextvars
import re
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_VALID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


def new_request_id(incoming: str | None = None) -> str:
    """Keep a well-formed incoming id (from a proxy), else make one."""
    if incoming and _VALID.match(incoming):
        return incoming
    return uuid.uuid4().hex
