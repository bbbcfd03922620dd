"""The amoCRM API v4 client: one choke point that limits, authenticates, classifies and logs every call.

Facts it is built on (../shared/amocrm-notes.md): 7 requests/s per account, 429 with an HTML
body and no Retry-After, 403 HTML block pages, 204 with an empty body for empty results,
single-use refresh tokens, `validation-errors` on 400. It never sleeps to retry: a transient
error is raised for Celery to retry with backoff. It only waits for a rate-limiter slot.
"""

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import errors
from .hosts import normalize_account_host
from .models import Account, SyncLog, Token
from .ratelimit import AccountRateLimiter, RateLimitTimeout
from .redaction import mask_url_secrets, redact_body

logger = logging.getLogger(__name__)

USER_AGENT = f"amocrm-django-integration/{settings.VERSION} (+https://github.com/; python-requests)"
# A 429 pauses every process's requests for the account at least this long.
RATE_LIMIT_PAUSE_SECONDS = 1.5
# Refresh this long before expiry so a call never starts with a token about to die.
REFRESH_AHEAD = timedelta(minutes=2)
PAGE_LIMIT = 250


def _new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json, application/hal+json, application/problem+json"
    if settings.AMOCRM_PROXY:
        session.proxies = {"http": settings.AMOCRM_PROXY, "https": settings.AMOCRM_PROXY}
    return session


def _parse_json(response: requests.Response):
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _looks_like_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return "html" in content_type or response.text.lstrip()[:1] == "<"


class AmoCRMClient:
    """Calls for one account. Public methods are named after the API operation they perform.

    `allow_any_state` lets the connect flow and "Test connection" call an account that is not
    (yet, or no longer) `connected`; everything else refuses to call such an account.
    `defer_logs` keeps sync-log rows in memory until `flush_logs()`, for calls made inside a
    transaction that may roll back (the token refresh under its row lock).
    """

    def __init__(self, account: Account, *, allow_any_state: bool = False, defer_logs: bool = False,
                 session: requests.Session | None = None, log_context: dict | None = None):
        self.account = account
        self.allow_any_state = allow_any_state
        self.defer_logs = defer_logs
        self.pending_logs: list[SyncLog] = []
        # Every sync-log row this client wrote, so callers can link them to their leads or sales.
        self.logs: list[SyncLog] = []
        self.session = session or _new_session()
        self.log_context = log_context or {}
        self.limiter = AccountRateLimiter(account.pk)
        self.timeout = (settings.AMOCRM_CONNECT_TIMEOUT, settings.AMOCRM_READ_TIMEOUT)
        self._token: Token | None = None

    # ------------------------------------------------------------------ plumbing

    def _origin(self) -> str:
        # Re-validated on every call: nothing carrying a secret ever leaves for another host.
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

    def send(self, method: str, path: str, *, operation: str, params=None, json_body=None,
             headers: dict | None = None, context: dict | None = None, authorized: bool = False) -> requests.Response:
        """The one place an HTTP request to amoCRM is made: limiter, timeout, classification, sync log."""
        self._check_state()
        url = self._origin() + path
        while True:
            # Refresh before taking a slot (the refresh takes its own): a slot held while waiting for
            # the refresh lock would send the request late and bunch it with later ones.
            token = self._usable_token() if authorized else None
            try:
                self.limiter.acquire()
            except RateLimitTimeout as exc:
                raise errors.RateLimited(str(exc)) from exc
            # Rarely the token falls due while waiting for the slot: refresh, then take a new slot.
            if token is None or not token.refresh_due(ahead=REFRESH_AHEAD):
                break
        if token is not None:
            headers = {**(headers or {}), "Authorization": f"Bearer {token.access_token}"}
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
        payload = _parse_json(response)
        if status == 429:
            # amoCRM sends no Retry-After: pause everyone for a while, then let Celery retry.
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
            return errors.Unauthorized(self._problem_text(payload, "Unauthorized"), status=status, payload=payload)
        if status >= 500 or status in (408, 425):
            return errors.TransientError(f"amoCRM answered {status}.", status=status, payload=payload)
        if status == 400 and isinstance(payload, dict) and payload.get("validation-errors"):
            message, entries = errors.describe_validation_errors(payload)
            return errors.ValidationFailed(message, errors=entries, payload=payload)
        if status == 404:
            return errors.NotFound(f"amoCRM answered 404 for {response.request.path_url}.", status=404,
                                   payload=payload)
        return errors.PermanentError(
            f"amoCRM answered {status}: {self._problem_text(payload, response.reason)}", status=status, payload=payload
        )

    @staticmethod
    def _problem_text(payload, default: str) -> str:
        if isinstance(payload, dict):
            parts = [str(payload[k]) for k in ("title", "hint", "detail") if payload.get(k)]
            if parts:
                return " — ".join(parts)
        return default

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
        # Connection health lives on the account (shown as the admin badge).
        if error is None:
            Account.objects.filter(pk=self.account.pk).update(last_success_at=now, error_count=0)
        elif not isinstance(error, errors.Unauthorized):  # a 401 is handled (refreshed) before it counts
            self.note_error(str(error), when=now)
        log = logger.warning if error else logger.info
        log(
            "amocrm call",
            extra={"account": self.account.pk, "operation": operation, "method": method, "path": path,
                   "http_status": row.http_status, "duration_ms": duration_ms, "error": row.error or None},
        )

    def note_error(self, message: str, *, when=None) -> None:
        from django.db.models import F

        Account.objects.filter(pk=self.account.pk).update(
            last_error=mask_url_secrets(message)[:2000], last_error_at=when or timezone.now(),
            error_count=F("error_count") + 1,
        )

    def flush_logs(self) -> None:
        if self.pending_logs:
            SyncLog.objects.bulk_create(self.pending_logs)
            self.pending_logs = []

    def _mark_blocked(self) -> None:
        Account.objects.filter(pk=self.account.pk).update(state=Account.State.BLOCKED)
        logger.error("amoCRM blocked the account", extra={"account": self.account.pk})

    # ------------------------------------------------------------------ authenticated calls

    def _current_token(self) -> Token:
        if self._token is None:
            token = Token.objects.filter(account_id=self.account.pk).first()
            if token is None:
                raise errors.AccountUnavailable("The account has no token: connect it first.")
            self._token = token
        return self._token

    def _refresh(self, stale_access_token: str) -> Token:
        from .services import account_refresh_token

        self._token = account_refresh_token(account_id=self.account.pk, stale_access_token=stale_access_token)
        return self._token

    def _usable_token(self) -> Token:
        token = self._current_token()
        if token.refresh_due(ahead=REFRESH_AHEAD):
            token = self._refresh(token.access_token)
        return token

    def request(self, method: str, path: str, *, operation: str, params=None, json_body=None,
                context: dict | None = None):
        """An authenticated API call; returns the parsed JSON (None for 204).

        A 401 refreshes the token once (under the per-account lock) and retries once; a second
        401 means the connection needs re-authorization.
        """
        call = {"operation": operation, "params": params, "json_body": json_body, "context": context,
                "authorized": True}
        try:
            response = self.send(method, path, **call)
        except errors.Unauthorized:
            rejected = self._current_token()
            if rejected.long_lived:
                self._needs_reauth("The long-lived token was rejected (401): issue a new one and reconnect.")
            self._refresh(rejected.access_token)
            try:
                response = self.send(method, path, **call)
            except errors.Unauthorized:
                self._needs_reauth("amoCRM rejected a freshly refreshed token (401 twice): reconnect the account.")
        return _parse_json(response)

    def _needs_reauth(self, message: str):
        with transaction.atomic():
            Account.objects.filter(pk=self.account.pk).update(state=Account.State.NEEDS_REAUTH)
            self.note_error(message)
        raise errors.TokenRevoked(message, status=401)

    def paginate(self, path: str, *, operation: str, key: str, params: dict | None = None) -> Iterator[dict]:
        """Yield every entity of a list endpoint, following `_links.next` until it is absent or a 204."""
        params = {**(params or {}), "page": 1, "limit": PAGE_LIMIT}
        origin = self._origin()
        while True:
            data = self.request("GET", path, operation=operation, params=params)
            if not data:
                return
            yield from (data.get("_embedded") or {}).get(key) or []
            next_href = ((data.get("_links") or {}).get("next") or {}).get("href")
            if not next_href:
                return
            # Follow only the page number, always on the account's own host: a `next` link
            # pointing elsewhere must never receive our bearer token.
            parts = urlsplit(next_href)
            if parts.netloc and f"{parts.scheme}://{parts.netloc}" != origin:
                logger.warning("ignoring a foreign _links.next", extra={"account": self.account.pk})
                return
            params = {**params, "page": params["page"] + 1}

    # ------------------------------------------------------------------ API operations

    def account_get(self) -> dict:
        """GET /api/v4/account — https://www.amocrm.ru/developers/content/crm_platform/account-info"""
        return self.request("GET", "/api/v4/account", operation="account.get") or {}

    def pipelines_list(self) -> list[dict]:
        """GET /api/v4/leads/pipelines — https://www.amocrm.ru/developers/content/crm_platform/leads_pipelines"""
        data = self.request("GET", "/api/v4/leads/pipelines", operation="pipelines.list") or {}
        return (data.get("_embedded") or {}).get("pipelines") or []

    def users_list(self) -> list[dict]:
        """GET /api/v4/users — https://www.amocrm.ru/developers/content/crm_platform/users-api"""
        return list(self.paginate("/api/v4/users", operation="users.list", key="users"))

    def lead_custom_fields_list(self) -> list[dict]:
        """GET /api/v4/leads/custom_fields — https://www.amocrm.ru/developers/content/crm_platform/custom-fields"""
        return list(self.paginate("/api/v4/leads/custom_fields", operation="custom_fields.list", key="custom_fields"))

    def contacts_search(self, query: str, *, context: dict | None = None) -> list[dict]:
        """GET /api/v4/contacts?query= (fuzzy full-text; 204 = none) — .../crm_platform/contacts-api"""
        data = self.request("GET", "/api/v4/contacts", operation="contacts.search",
                            params={"query": query, "limit": 50}, context=context)
        return ((data or {}).get("_embedded") or {}).get("contacts") or []

    def leads_complex_create(self, deals: list[dict], *, context: dict | None = None) -> list[dict]:
        """POST /api/v4/leads/complex (≤ 50 deals, one contact each) — .../crm_platform/leads-api#leads-complex-add"""
        return self.request("POST", "/api/v4/leads/complex", operation="leads.complex", json_body=deals,
                            context=context) or []

    def lead_notes_create(self, notes: list[dict], *, context: dict | None = None) -> list[dict]:
        """POST /api/v4/leads/notes — https://www.amocrm.ru/developers/content/crm_platform/events-and-notes"""
        data = self.request("POST", "/api/v4/leads/notes", operation="notes.create", json_body=notes,
                            context=context) or {}
        return (data.get("_embedded") or {}).get("notes") or []

    def unsorted_forms_create(self, items: list[dict], *, context: dict | None = None) -> list[dict]:
        """POST /api/v4/leads/unsorted/forms — https://www.amocrm.ru/developers/content/crm_platform/unsorted-api"""
        data = self.request("POST", "/api/v4/leads/unsorted/forms", operation="unsorted.create", json_body=items,
                            context=context) or {}
        return (data.get("_embedded") or {}).get("unsorted") or []

    def lead_get(self, deal_id: int, *, with_contacts: bool = True, context: dict | None = None) -> dict | None:
        """GET /api/v4/leads/{id}?with=contacts — None when the deal no longer exists."""
        params = {"with": "contacts"} if with_contacts else None
        try:
            return self.request("GET", f"/api/v4/leads/{int(deal_id)}", operation="leads.get", params=params,
                                context=context)
        except errors.NotFound:
            return None

    def leads_list_by_ids(self, deal_ids: list[int]) -> Iterator[dict]:
        """GET /api/v4/leads?filter[id][]=…&with=contacts, 250 ids per request; deleted deals are left out."""
        for start in range(0, len(deal_ids), PAGE_LIMIT):
            chunk = [int(deal_id) for deal_id in deal_ids[start:start + PAGE_LIMIT]]
            yield from self.paginate("/api/v4/leads", operation="leads.list", key="leads",
                                     params={"filter[id][]": chunk, "with": "contacts"})

    def leads_updated_since(self, since_ts: int) -> Iterator[dict]:
        """GET /api/v4/leads?filter[updated_at][from]= (paginated) — for reconciliation."""
        return self.paginate("/api/v4/leads", operation="leads.list", key="leads",
                             params={"filter[updated_at][from]": int(since_ts), "with": "contacts"})

    def webhooks_list(self) -> list[dict]:
        """GET /api/v4/webhooks — https://www.amocrm.ru/developers/content/crm_platform/webhooks-api"""
        data = self.request("GET", "/api/v4/webhooks", operation="webhooks.list") or {}
        return (data.get("_embedded") or {}).get("webhooks") or []

    def webhook_subscribe(self, destination: str, settings_: list[str]) -> dict:
        """POST /api/v4/webhooks {destination, settings, sort}."""
        return self.request("POST", "/api/v4/webhooks", operation="webhooks.subscribe",
                            json_body={"destination": destination, "settings": settings_, "sort": 10}) or {}

    def webhook_unsubscribe(self, destination: str) -> None:
        """DELETE /api/v4/webhooks {destination}."""
        self.request("DELETE", "/api/v4/webhooks", operation="webhooks.unsubscribe",
                     json_body={"destination": destination})
