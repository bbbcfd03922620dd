"""The sandbox's control and inspection API under `/_sandbox/`: no token, no rate limit, plain JSON.

Tests and benchmarks use it (through `control.SandboxControl`) to issue codes and tokens, look at
what an account holds, count requests, find duplicates, move deals, inject faults and reset.
`{account}` in a path is an account id, or `current` for the account whose server answers
(the first account on the www server).
"""

import secrets
import uuid
from collections import defaultdict
from typing import Any

from . import validation
from .catalog import LOST_STATUS_ID
from .entities import contact_to_api, deal_to_api, note_to_api, task_to_api, unsorted_to_api
from .faults import FaultSettingsError
from .search import normalized_email, normalized_phone
from .state import LONG_LIVED_DEFAULT_SECONDS as LONG_LIVED_SECONDS
from .state import RESET_PARTS, AccountState, Integration, SandboxState
from .webhooks_out import FORM_CONTENT_TYPE, delete_event, lead_event, reduced_status_event
from .wire import BadBody, Request, Response, Router, plain_json, problem

routes = Router()


class ControlError(Exception):
    """A control request that cannot be served; answered 400 (or `status`) with its message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    def response(self) -> Response:
        return problem(self.status, "Sandbox control error", str(self))


def _account(sandbox: SandboxState, serving: AccountState | None, key: Any) -> AccountState:
    if key in (None, "current"):
        return serving or sandbox.accounts[0]
    account = sandbox.account(key) if isinstance(key, int) else None
    if account is None:
        raise ControlError(f"No sandbox account {key}", status=404)
    return account


def _int_setting(payload: dict, name: str, *, minimum: int = 1) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if not validation.is_int(value) or value < minimum:
        raise ControlError(f"{name} must be an integer >= {minimum}")
    return value


@routes.route("GET", "/_sandbox")
def overview(sandbox: SandboxState, serving: AccountState | None, request: Request) -> Response:
    return plain_json({
        "www_origin": sandbox.www_origin,
        "now": sandbox.clock(),
        "accounts": [account.describe() for account in sandbox.accounts],
        "integrations": [item.as_dict() for item in sandbox.integrations.values()],
        "deny_consent": sandbox.deny_consent,
    })


@routes.route("GET", "/_sandbox/integrations")
def integrations_list(sandbox: SandboxState, serving: AccountState | None, request: Request) -> Response:
    return plain_json([item.as_dict() for item in sandbox.integrations.values()])


@routes.route("POST", "/_sandbox/integrations")
def integration_register(sandbox: SandboxState, serving: AccountState | None, request: Request) -> Response:
    """{"redirect_uri", "client_id"?, "client_secret"?} → the integration (missing credentials generated)."""
    payload = request.json_object()
    redirect_uri = payload.get("redirect_uri")
    if not isinstance(redirect_uri, str) or not redirect_uri.startswith(("http://", "https://")):
        raise ControlError("redirect_uri must be an absolute http(s) URL")
    integration = Integration(client_id=str(payload.get("client_id") or uuid.uuid4()),
                              client_secret=str(payload.get("client_secret") or secrets.token_urlsafe(48)),
                              redirect_uri=redirect_uri)
    return plain_json(sandbox.register_integration(integration).as_dict(), status=201)


@routes.route("POST", "/_sandbox/authorize")
def authorize(sandbox: SandboxState, serving: AccountState | None, request: Request) -> Response:
    """{"client_id"?, "account_id"?} → {"code", "referer", ...}: the consent page without a browser."""
    payload = request.json_object(optional=True)
    integration = _integration(sandbox, payload.get("client_id"))
    account = _account(sandbox, serving, payload.get("account_id"))
    with account.lock:
        code = account.tokens.issue_code(integration.client_id, account.clock())
    return plain_json({"code": code, "referer": account.host, "account_id": account.account_id,
                       "origin": account.origin, **integration.as_dict()})


@routes.route("POST", "/_sandbox/long-lived-token")
def long_lived_token(sandbox: SandboxState, serving: AccountState | None, request: Request) -> Response:
    """{"account_id"?, "client_id"?, "expires_in"?} → {"token", "expires_at", ...}: a Bearer with no refresh."""
    payload = request.json_object(optional=True)
    integration = _integration(sandbox, payload.get("client_id"))
    account = _account(sandbox, serving, payload.get("account_id"))
    lifetime = _int_setting(payload, "expires_in") or LONG_LIVED_SECONDS
    with account.lock:
        now = account.clock()
        token = account.tokens.issue_long_lived(client_id=integration.client_id, now=now, lifetime=lifetime,
                                                claims=account.token_claims())
    return plain_json({"token": token, "access_token": token, "expires_at": int(now + lifetime),
                       "account_id": account.account_id, "origin": account.origin}, status=201)


def _integration(sandbox: SandboxState, client_id: Any) -> Integration:
    if client_id is None:
        integrations = list(sandbox.integrations.values())
        if not integrations:
            raise ControlError("No integration is registered")
        return integrations[0]
    integration = sandbox.integration(str(client_id))
    if integration is None:
        raise ControlError(f"No integration with client_id {client_id}")
    return integration


@routes.route("POST", "/_sandbox/consent")
def consent_toggle(sandbox: SandboxState, serving: AccountState | None, request: Request) -> Response:
    """{"deny": true} makes the consent page answer `error=access_denied` until set back to false."""
    deny = request.json_object().get("deny")
    if not isinstance(deny, bool):
        raise ControlError("deny must be a boolean")
    sandbox.deny_consent = deny
    return plain_json({"deny_consent": deny})


@routes.route("GET", "/_sandbox/clock")
def clock_read(sandbox: SandboxState, serving: AccountState | None, request: Request) -> Response:
    return plain_json({"now": sandbox.clock()})


@routes.route("POST", "/_sandbox/clock")
def clock_advance(sandbox: SandboxState, serving: AccountState | None, request: Request) -> Response:
    """{"advance": seconds}: age codes and tokens without waiting."""
    seconds = request.json_object().get("advance")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise ControlError("advance must be a non-negative number of seconds")
    return plain_json({"now": sandbox.clock.advance(seconds)})


@routes.route("POST", "/_sandbox/reset")
def reset(sandbox: SandboxState, serving: AccountState | None, request: Request) -> Response:
    """{"account_id"?, "parts"?: [entities, tokens, stats, limits, faults, webhooks, deliveries]}; default all."""
    payload = request.json_object(optional=True)
    parts = payload.get("parts") or list(RESET_PARTS)
    if not isinstance(parts, list) or set(parts) - set(RESET_PARTS):
        raise ControlError(f"parts must be a list drawn from {', '.join(RESET_PARTS)}")
    accounts = ([_account(sandbox, serving, payload["account_id"])] if payload.get("account_id") is not None
                else sandbox.accounts)
    for account in accounts:
        account.reset(tuple(parts))
    if payload.get("account_id") is None:
        sandbox.deny_consent = False
    return plain_json({"reset": [account.account_id for account in accounts], "parts": parts})


@routes.route("GET", "/_sandbox/accounts")
def accounts_list(sandbox: SandboxState, serving: AccountState | None, request: Request) -> Response:
    return plain_json([account.describe() for account in sandbox.accounts])


@routes.route("GET", "/_sandbox/accounts/{account:str}/stats")
def stats(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    """Request counters; `?timestamps=1` adds the time of every counted request."""
    target = _account(sandbox, serving, account)
    report = target.stats.snapshot(with_timestamps=request.arg("timestamps") in ("1", "true"))
    with target.lock:
        report.update(blocked=target.limiter.blocked, rate_limit=target.limiter.rate_limit,
                      block_threshold=target.limiter.block_threshold, token_lifetime=target.token_lifetime,
                      webhook_deliveries=len(target.outbox.deliveries))
    return plain_json(report)


@routes.route("GET", "/_sandbox/accounts/{account:str}/settings")
def settings_read(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    target = _account(sandbox, serving, account)
    return plain_json(_settings(target))


@routes.route("POST", "/_sandbox/accounts/{account:str}/settings")
def settings_change(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    """{"rate_limit"?, "block_threshold"?, "token_lifetime"?} for this account from now on."""
    target = _account(sandbox, serving, account)
    payload = request.json_object()
    unknown = set(payload) - {"rate_limit", "block_threshold", "token_lifetime"}
    if unknown:
        raise ControlError(f"Unknown settings: {', '.join(sorted(unknown))}")
    values = {name: _int_setting(payload, name) for name in payload}
    with target.lock:
        if values.get("rate_limit"):
            target.limiter.rate_limit = values["rate_limit"]
        if values.get("block_threshold"):
            target.limiter.block_threshold = values["block_threshold"]
        if values.get("token_lifetime"):
            target.token_lifetime = values["token_lifetime"]
    return plain_json(_settings(target))


def _settings(account: AccountState) -> dict:
    return {"rate_limit": account.limiter.rate_limit, "block_threshold": account.limiter.block_threshold,
            "token_lifetime": account.token_lifetime}


@routes.route("POST", "/_sandbox/accounts/{account:str}/tokens/expire")
def tokens_expire(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    """Every short-lived access token of the account expires now; refresh tokens stay valid."""
    target = _account(sandbox, serving, account)
    with target.lock:
        expired = target.tokens.expire_access_tokens(target.clock())
    return plain_json({"expired": expired})


@routes.route("GET", "/_sandbox/accounts/{account:str}/faults")
def faults_read(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    target = _account(sandbox, serving, account)
    with target.lock:
        return plain_json(target.faults.as_dict())


@routes.route("POST", "/_sandbox/accounts/{account:str}/faults")
def faults_set(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    """Replace the account's fault plan (see faults.FaultPlan for the keys); {} clears it."""
    target = _account(sandbox, serving, account)
    payload = request.json_object(optional=True)
    with target.lock:
        try:
            target.faults.configure(payload)
        except FaultSettingsError as exc:
            raise ControlError(str(exc)) from exc
        return plain_json(target.faults.as_dict())


@routes.route("DELETE", "/_sandbox/accounts/{account:str}/faults")
def faults_clear(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    target = _account(sandbox, serving, account)
    with target.lock:
        target.faults.configure({})
        return plain_json(target.faults.as_dict())


@routes.route("GET", "/_sandbox/accounts/{account:str}/webhook-deliveries")
def deliveries_list(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    """Every webhook delivery so far; `?wait=1` first waits (up to 5 s) for deliveries in flight."""
    target = _account(sandbox, serving, account)
    if request.arg("wait") in ("1", "true"):
        target.outbox.wait_idle(timeout=5)
    return plain_json(target.outbox.deliveries_snapshot())


@routes.route("POST", "/_sandbox/accounts/{account:str}/webhook-deliveries")
def delivery_raw(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    """{"destination", "body", "content_type"?}: POST these exact bytes now, as the account's webhook sender."""
    target = _account(sandbox, serving, account)
    payload = request.json_object()
    destination, body = payload.get("destination"), payload.get("body")
    if not isinstance(destination, str) or not isinstance(body, str):
        raise ControlError("destination and body must be strings")
    content_type = payload.get("content_type") or FORM_CONTENT_TYPE
    try:
        record = target.outbox.deliver(destination, body, content_type=content_type, events=["raw"])
    except ValueError as exc:
        raise ControlError(str(exc)) from exc
    return plain_json(record)


@routes.route("POST", "/_sandbox/accounts/{account:str}/webhooks/disable")
def webhooks_disable(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    """{"destination"?}: amoCRM disables the subscription (all of them without a destination), as after failures."""
    target = _account(sandbox, serving, account)
    destination = (request.json_object(optional=True) or {}).get("destination")
    return plain_json({"disabled": target.outbox.disable(destination)})


@routes.route("POST", "/_sandbox/accounts/{account:str}/deals/{deal_id}/move")
def deal_move(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any,
              deal_id: int) -> Response:
    """{"status_id", "pipeline_id"?, "price"?, "reduced"?, "loss_reason_id"?}: a manager drags the deal.

    Webhooks follow. Closing as lost (143) may name one of the account's loss reasons; leaving
    the lost stage clears it.
    """
    target = _account(sandbox, serving, account)
    payload = request.json_object()
    if "status_id" not in payload:
        raise ControlError("status_id is required")
    reduced = payload.get("reduced", False)
    if not isinstance(reduced, bool):
        raise ControlError("reduced must be a boolean")
    with target.lock:
        deal = _deal(target, deal_id)
        problems: validation.Problems = []
        item = {key: payload[key] for key in ("status_id", "pipeline_id", "price") if key in payload}
        changes = validation.check_deal(item, problems, catalog=target.catalog, store=target.store, deal=deal)
        if problems:
            raise validation.ValidationFailed([{"request_id": "0", "errors": problems}])
        reason_id = payload.get("loss_reason_id")
        if reason_id is not None and (payload["status_id"] != LOST_STATUS_ID
                                      or target.catalog.loss_reason(reason_id) is None):
            raise ControlError("loss_reason_id must be one of the account's loss reasons, with status_id 143")
        change = target.store.update_deal(deal, changes, now=target.now(), user_id=target.catalog.users[-1].id)
        deal.loss_reason_id = reason_id if deal.status_id == LOST_STATUS_ID else None
        if reduced:
            target.outbox.publish([reduced_status_event(deal, change)], target, reduced=True)
        else:
            events = [lead_event("status", deal, target, change)] if change.status_changed(deal) else []
            target.outbox.publish(events + [lead_event("update", deal, target, change)], target)
        return plain_json(deal_to_api(deal, target, with_contacts=True, with_loss_reason=True))


@routes.route("POST", "/_sandbox/accounts/{account:str}/deals/{deal_id}/delete")
def deal_delete(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any,
                deal_id: int) -> Response:
    """API v4 cannot delete deals; a manager can, and amoCRM then sends `delete`."""
    target = _account(sandbox, serving, account)
    with target.lock:
        deal = _deal(target, deal_id)
        deal.is_deleted, deal.updated_at = True, target.now()
        target.outbox.publish([delete_event(deal)], target)
        return plain_json(deal_to_api(deal, target, with_contacts=True))


@routes.route("POST", "/_sandbox/accounts/{account:str}/deals/{deal_id}/restore")
def deal_restore(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any,
                 deal_id: int) -> Response:
    target = _account(sandbox, serving, account)
    with target.lock:
        deal = _deal(target, deal_id, include_deleted=True)
        deal.is_deleted, deal.updated_at = False, target.now()
        target.outbox.publish([lead_event("restore", deal, target)], target)
        return plain_json(deal_to_api(deal, target, with_contacts=True))


def _deal(account: AccountState, deal_id: int, *, include_deleted: bool = False):
    deal = account.store.deals.get(deal_id) if include_deleted else account.store.live_deal(deal_id)
    if deal is None:
        raise ControlError(f"No deal {deal_id} in account {account.account_id}", status=404)
    return deal


@routes.route("GET", "/_sandbox/accounts/{account:str}/duplicates")
def duplicates(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any) -> Response:
    """Contacts sharing a phone or email, and deals sharing a marker (`?lead_field=<id|code>`, `?tag_prefix=`).

    `extra_contacts` / `extra_leads` count the entities that should not exist: for each group of
    duplicates (contacts joined through any shared phone or email) all but one.
    """
    target = _account(sandbox, serving, account)
    with target.lock:
        report = {"contacts": _duplicate_contacts(target)}
        report["leads"] = _duplicate_leads(target, request.arg("lead_field"), request.arg("tag_prefix"))
    return plain_json(report)


def _duplicate_contacts(account: AccountState) -> dict:
    phone_field = account.catalog.contact_fields.by_code("PHONE")
    email_field = account.catalog.contact_fields.by_code("EMAIL")
    by_phone: defaultdict[str, set[int]] = defaultdict(set)
    by_email: defaultdict[str, set[int]] = defaultdict(set)
    for contact in account.store.contacts.values():
        for value in contact.custom_fields.get(phone_field.id, []):
            if normalized_phone(value["value"]):
                by_phone[normalized_phone(value["value"])].add(contact.id)
        for value in contact.custom_fields.get(email_field.id, []):
            if normalized_email(value["value"]):
                by_email[normalized_email(value["value"])].add(contact.id)
    groups = [ids for ids in list(by_phone.values()) + list(by_email.values()) if len(ids) > 1]
    return {
        "by_phone": {key: sorted(ids) for key, ids in by_phone.items() if len(ids) > 1},
        "by_email": {key: sorted(ids) for key, ids in by_email.items() if len(ids) > 1},
        "total": len(account.store.contacts),
        "extra_contacts": _extra_members(groups),
    }


def _duplicate_leads(account: AccountState, lead_field: str | None, tag_prefix: str | None) -> dict:
    deals = [deal for deal in account.store.deals.values() if not deal.is_deleted]
    report: dict[str, Any] = {"total": len(deals)}
    groups: list[set[int]] = []
    if lead_field:
        fields = account.catalog.lead_fields
        custom_field = fields.by_id(int(lead_field)) if lead_field.isdigit() else fields.by_code(lead_field)
        if custom_field is None:
            raise ControlError(f"No deal field {lead_field}")
        by_value: defaultdict[str, set[int]] = defaultdict(set)
        for deal in deals:
            for value in deal.custom_fields.get(custom_field.id, []):
                by_value[str(value["value"])].add(deal.id)
        report["by_field"] = {key: sorted(ids) for key, ids in by_value.items() if len(ids) > 1}
        groups += [ids for ids in by_value.values() if len(ids) > 1]
    if tag_prefix:
        by_tag: defaultdict[str, set[int]] = defaultdict(set)
        for deal in deals:
            for tag_id in deal.tag_ids:
                tag = account.store.tag_by_id("leads", tag_id)
                if tag and tag.name.startswith(tag_prefix):
                    by_tag[tag.name].add(deal.id)
        report["by_tag"] = {key: sorted(ids) for key, ids in by_tag.items() if len(ids) > 1}
        groups += [ids for ids in by_tag.values() if len(ids) > 1]
    report["extra_leads"] = _extra_members(groups)
    return report


def _extra_members(groups: list[set[int]]) -> int:
    """Merge overlapping groups, then count everything but one member of each."""
    merged: list[set[int]] = []
    for group in groups:
        overlapping = [existing for existing in merged if existing & group]
        combined = set(group).union(*overlapping)
        merged = [existing for existing in merged if not existing & group] + [combined]
    return sum(len(group) - 1 for group in merged)


_COLLECTIONS = ("contacts", "leads", "notes", "unsorted", "webhooks", "companies", "tasks")


@routes.route("GET", "/_sandbox/accounts/{account:str}/{collection:str}")
def collection_list(sandbox: SandboxState, serving: AccountState | None, request: Request, account: Any,
                    collection: str) -> Response:
    """Everything of one kind the account holds, deleted deals included, in API shape."""
    target = _account(sandbox, serving, account)
    if collection not in _COLLECTIONS:
        raise ControlError(f"Unknown collection {collection}: use one of {', '.join(_COLLECTIONS)}", status=404)
    with target.lock:
        store = target.store
        render = {
            "contacts": lambda: [contact_to_api(item, target, with_leads=True) for item in store.contacts.values()],
            "leads": lambda: [deal_to_api(item, target, with_contacts=True) for item in store.deals.values()],
            "notes": lambda: [note_to_api(item, target) for item in store.notes.values()],
            "tasks": lambda: [task_to_api(item, target) for item in store.tasks.values()],
            "unsorted": lambda: [unsorted_to_api(item, target) for item in store.unsorted.values()],
            "webhooks": lambda: [item.to_api(target) for item in target.outbox.subscriptions.values()],
            "companies": lambda: [{"id": item.id, "name": item.name, "created_at": item.created_at}
                                  for item in store.companies.values()],
        }
        return plain_json(render[collection]())


def control_error_response(exc: Exception) -> Response | None:
    """The answer for an exception a control handler raised on purpose, or None."""
    if isinstance(exc, ControlError):
        return exc.response()
    if isinstance(exc, BadBody):
        return problem(400, "Sandbox control error", str(exc))
    if isinstance(exc, validation.ValidationFailed):
        return exc.response()
    return None
