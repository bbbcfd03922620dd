"""The small error hierarchy every amoCRM call raises: transient, permanent, or needing the operator."""


class AmoCRMError(Exception):
    """Base class. `transient` errors are retried by Celery; the others are not."""

    transient = False

    def __init__(self, message: str, *, status: int | None = None, payload=None):
        super().__init__(message)
        self.status = status
        self.payload = payload


class TransientError(AmoCRMError):
    """Network failure, timeout, 5xx: the request may or may not have been applied. Retry later."""

    transient = True


class RateLimited(TransientError):
    """429 from amoCRM, or no limiter slot within the wait: the account is paused, retry later."""


class PermanentError(AmoCRMError):
    """A 4xx other than 401/429/blocked 403: retrying the same request will fail the same way."""


class ValidationFailed(PermanentError):
    """400 with amoCRM's `validation-errors`; `errors` lists {request_id, code, path, detail}."""

    def __init__(self, message: str, *, errors: list[dict], status: int = 400, payload=None):
        super().__init__(message, status=status, payload=payload)
        self.errors = errors


class NotFound(PermanentError):
    """404 from an API path."""


class AuthError(AmoCRMError):
    """The connection needs the operator: re-authorization, or fixing the integration settings."""


class Unauthorized(AuthError):
    """A 401 answer. The client refreshes once and retries once before it becomes TokenRevoked."""


class TokenRevoked(AuthError):
    """The refresh token was already used or revoked, or a retried call still answered 401."""


class InvalidClient(AuthError):
    """Client id, secret or redirect URI does not match the integration in amoCRM."""


class InvalidGrant(AuthError):
    """The authorization code is expired, already used or not for this integration."""


class AccountBlocked(AmoCRMError):
    """amoCRM answered 403 with its HTML block page: every call for the account stops."""


class AccountUnavailable(AmoCRMError):
    """The account is not in a state that allows calls (not connected, needs re-auth, blocked, disabled)."""


def describe_validation_errors(payload) -> tuple[str, list[dict]]:
    """Flatten amoCRM's `validation-errors` into one readable message and a list of entries."""
    entries = []
    for group in (payload or {}).get("validation-errors") or []:
        request_id = group.get("request_id")
        for err in group.get("errors") or []:
            entries.append(
                {
                    "request_id": request_id,
                    "code": err.get("code"),
                    "path": err.get("path"),
                    "detail": err.get("detail"),
                }
            )
    if not entries:
        detail = (payload or {}).get("detail") or (payload or {}).get("title") or "Bad request"
        return str(detail), []
    parts = [f"#{e['request_id']} {e['path']}: {e['code']} {e['detail'] or ''}".strip() for e in entries]
    return "amoCRM rejected the request: " + "; ".join(parts), entries
