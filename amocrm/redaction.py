"""Redaction for the sync log: tokens, secrets, codes and URL secrets never reach the database or the logs in clear."""

import json
from urllib.parse import parse_qsl, urlencode

from config.logging import mask_url_secrets

from .crypto import redact

SECRET_KEYS = {
    "access_token",
    "refresh_token",
    "client_secret",
    "code",
    "token",
    "password",
    "authorization",
    "x-refresh-token",
    "secret",
}
BODY_CAP = 8 * 1024


def redact_data(data):
    if isinstance(data, dict):
        return {k: (redact(str(v)) if str(k).lower() in SECRET_KEYS and v else redact_data(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_data(item) for item in data]
    return data


def truncate(text: str, cap: int = BODY_CAP) -> str:
    if len(text) <= cap:
        return text
    return text[:cap] + f"… [{len(text) - cap} more characters]"


def redact_body(body) -> str:
    """Render a request or response body (dict, list, JSON text or form text) redacted and capped.

    URL secrets are masked too: the webhook subscription calls carry our webhook URL (its key) as
    `destination`, in the request and in amoCRM's answers.
    """
    return mask_url_secrets(_redacted_body(body))


def _redacted_body(body) -> str:
    if body is None or body == "" or body == b"":
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        stripped = body.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                body = json.loads(body)
            except ValueError:
                return truncate(body)
        elif "=" in body and "<" not in body[:100]:
            pairs = parse_qsl(body, keep_blank_values=True)
            redacted = [(k, redact(v) if k.lower() in SECRET_KEYS and v else mask_url_secrets(v)) for k, v in pairs]
            return truncate(urlencode(redacted))
        else:
            return truncate(body)
    return truncate(json.dumps(redact_data(body), ensure_ascii=False, indent=1))
