"""The one way out to amoCRM: every HTTP request for an account is limited, sent, classified and logged here.

Facts it is built on (docs/amocrm.md#calling-the-api): 7 requests/s per account and 429 with an
HTML body and no Retry-After (docs/amocrm.md#rate-limits), 403 HTML block pages, 204 with an empty
body (docs/amocrm.md#204-for-empty-results), `validation-errors` on 400
(docs/amocrm.md#validation-errors). It never sleeps to retry: a transient error is raised for
Celery to retry with backoff; it only waits for a rate-limiter slot.

Authentication is the caller's business: `send()` takes `Credentials` (headers to add, and whether
they went stale while the request waited for its slot) and knows nothing of how they are made.
Connection health lives on the account and is written here: last success, last error, error count,
and the `blocked` state (STYLE.md's "health lives on the model").
"""

import logging
import time
from typing import Protocol

import requests
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from monitoring import metrics

from . import errors
from .hosts import normalize_account_host
from .models import Account, SyncLog
from .ratelimit import AccountRateLimiter, RateLimitTimeout
from .redaction import mask_url_secrets, redact_body

logger = logging.getLogger(__name__)

USER_AGENT = f"amocrm-django-integration/{settings.VERSION} (+https://github.com/; python-requests)"
# A 429 pauses every process's requests for the account at least this long.
RATE_LIMIT_PAUSE_SECONDS = 1.5


class Credentials(Protocol):
    """What a request needs to authenticate; the transport asks, never looks inside."""

    def headers(self) -> dict[str, str]:
        """Headers to send (made fresh first when due); called before the request takes a slot."""

    def stale(self) -> bool:
        """True when the headers went stale while the request waited for its slot: ask again, take a new slot."""


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json, application/hal+json, application/problem+json"
    if settings.AMOCRM_PROXY:
        session.proxies = {"http": settings.AMOCRM_PROXY, "https": settings.AMOCRM_PROXY}
    return session


def parse_json(response: requests.Response):
    """The answer's JSON; None for a 204, an empty body or a body that is not JSON."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _looks_like_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return "html" in content_type or response.text.lstrip()[:1] == "<"


def _problem_text(payload, default: str) -> str:
    if isinstance(payload, dict):
        parts = [str(payload[k]) for k in ("title", "hint", "detail") if payload.get(k)]
        if parts:
            return " — ".join(parts)
    return default


def account_note_error(*, account_id: int, message: str, when=None) -> None:
    """Record a failed call on the account's health fields (shown as the admin badge and on the status API)."""
    Account.objects.filter(pk=account_id).update(
        last_error=mask_url_secrets(message)[:2000], last_error_at=when or timezone.now(),
        error_count=F("error_count") + 1,
    )


class Transport:
    """Sends requests for one account.

    `allow_any_state` lets the connect flow call an account that is not (yet) `connected`;
    everything else refuses to call such an account. `defer_logs` keeps sync-log rows in memory
    until `flush_logs()`, for calls made inside a transaction that may roll back. `logs` lists every
    sync-log row written, so callers can link them to their leads or sales.
    """

    def __init__(self, account: Account, *, allow_any_state: bool = False, defer_logs: bool = False,
                 session: requests.Session | None = None, log_context: dict | None = None):
        self.account = account
        self.allow_any_state = allow_any_state
        self.defer_logs = defer_logs
        self.pending_logs: list[SyncLog] = []
        self.logs: list[SyncLog] = []
        self.session = session or new_session()
        self.log_context = log_context or {}
        self.limiter = AccountRateLimiter(account.pk)
        self.timeout = (settings.AMOCRM_CONNECT_TIMEOUT, settings.AMOCRM_READ_TIMEOUT)

    def origin(self) -> str:
        """The account's origin, re-validated on every call: nothing carrying a secret leaves for another host."""
        try:
            return normalize_account_host(self.account.host)
        except ValueError as exc:
            raise errors.AccountUnavailable(f"Account host refused: {exc}") from exc

    def _check_state(self) -> None:
        if self.allow_any_state:
            return
        state = Account.objects.filter(pk=self.account.pk).values_list("state", flat=True).first()
        if state != Account.State.CONNECTED:
            label = Account.State(state).label if state else "deleted"
            raise errors.AccountUnavailable(f"No calls are made for this account: it is {label.lower()}.")

    def _take_slot(self, credentials: Credentials | None) -> dict[str, str]:
        """Wait for a limiter slot; returns the credentials' headers, made before the slot was taken."""
        while True:
            # Credentials first (making them may take a slot of its own): a slot held while waiting
            # for them would send the request late and bunch it with later ones.
            auth = credentials.headers() if credentials is not None else {}
            try:
                self.limiter.acquire()
            except RateLimitTimeout as exc:
                raise errors.RateLimited(str(exc)) from exc
            # Rarely they fall due while waiting for the slot: make them again, then take a new slot.
            if credentials is None or not credentials.stale():
                return auth

    def send(self, method: str, path: str, *, operation: str, params=None, json_body=None,
             headers: dict | None = None, context: dict | None = None,
             credentials: Credentials | None = None) -> requests.Response:
        """The one place an HTTP request to amoCRM is made: state check, limiter, timeout, classification, log."""
        self._check_state()
        url = self.origin() + path
        auth = self._take_slot(credentials)
        if auth:
            headers = {**(headers or {}), **auth}
        started = time.monotonic()
        response = None
        error: errors.AmoCRMError | None = None
        try:
            response = self.session.request(
                method, url, params=params, json=json_body, headers=headers, timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            error = errors.TransientError(f"amoCRM did not answer in time ({exc.__class__.__name__}).")
        except requests.RequestException as exc:
            error = errors.TransientError(f"Network error talking to amoCRM: {exc.__class__.__name__}: {exc}")
        duration_ms = int((time.monotonic() - started) * 1000)
        metrics.amocrm_request(operation, response.status_code if response is not None else None, duration_ms / 1000)
        if error is None:
            error = self._classify(response)
        self._record(method, path, operation, params, json_body, response, duration_ms, error, context)
        if error is not None:
            raise error
        return response

    def _classify(self, response: requests.Response) -> errors.AmoCRMError | None:
        status = response.status_code
        if status < 300:
            return None
        payload = parse_json(response)
        if status == 429:
            # amoCRM sends no Retry-After (docs/amocrm.md#rate-limits): pause everyone, then let Celery retry.
            self.limiter.pause(RATE_LIMIT_PAUSE_SECONDS)
            return errors.RateLimited("amoCRM answered 429 Too Many Requests.", status=status)
        if status == 403 and _looks_like_html(response):
            self._mark_blocked()
            return errors.AccountBlocked(
                "amoCRM blocked this account (403 with its HTML block page): every call stops until "
                "amoCRM support lifts the block.",
                status=status,
            )
        if status == 401:
            return errors.Unauthorized(_problem_text(payload, "Unauthorized"), status=status, payload=payload)
        if status >= 500 or status in (408, 425):
            return errors.TransientError(f"amoCRM answered {status}.", status=status, payload=payload)
        if status == 400 and isinstance(payload, dict) and payload.get("validation-errors"):
            message, entries = errors.describe_validation_errors(payload)
            return errors.ValidationFailed(message, errors=entries, payload=payload)
        if status == 404:
            return errors.NotFound(f"amoCRM answered 404 for {response.request.path_url}.", status=404,
                                   payload=payload)
        return errors.PermanentError(
            f"amoCRM answered {status}: {_problem_text(payload, response.reason)}", status=status, payload=payload
        )

    def _record(self, method, path, operation, params, json_body, response, duration_ms, error, context) -> None:
        now = timezone.now()
        query = ""
        if params:
            query = "?" + "&".join(f"{k}={v}" for k, v in params.items())
        row = SyncLog(
            account_id=self.account.pk,
            created_at=now,
            operation=operation,
            direction=SyncLog.Direction.OUTBOUND,
            status=SyncLog.Status.ERROR if error else SyncLog.Status.OK,
            method=method,
            path=mask_url_secrets(path + query)[:500],
            http_status=response.status_code if response is not None else None,
            duration_ms=duration_ms,
            amocrm_request_id=(response.headers.get("X-Request-Id", "") if response is not None else "")[:100],
            request_body=redact_body(json_body),
            response_body=redact_body(response.content) if response is not None else "",
            error=mask_url_secrets(str(error)) if error else "",
            context={**self.log_context, **(context or {})},
        )
        if self.defer_logs:
            self.pending_logs.append(row)
        else:
            row.save()
            self.logs.append(row)
        if error is None:
            Account.objects.filter(pk=self.account.pk).update(last_success_at=now, error_count=0)
        elif not isinstance(error, errors.Unauthorized):  # a 401 is the caller's: new credentials, one retry
            account_note_error(account_id=self.account.pk, message=str(error), when=now)
        log = logger.warning if error else logger.info
        log(
            "amocrm call",
            extra={"account": self.account.pk, "operation": operation, "method": method, "path": path,
                   "http_status": row.http_status, "duration_ms": duration_ms, "error": row.error or None},
        )

    def flush_logs(self) -> None:
        """Write the sync-log rows kept back by `defer_logs` (after the transaction they were made in)."""
        if self.pending_logs:
            SyncLog.objects.bulk_create(self.pending_logs)
            self.pending_logs = []

    def _mark_blocked(self) -> None:
        Account.objects.filter(pk=self.account.pk).update(state=Account.State.BLOCKED)
        logger.error("amoCRM blocked the account", extra={"account": self.account.pk})
