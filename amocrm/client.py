"""The amoCRM API v4 client: the operations we call, each authenticated with the account's bearer token.

Layers, bottom to top: `transport` sends every request (limiter, timeouts, error classes, sync log,
account health), `oauth` talks to the token endpoint, `tokens` stores tokens and refreshes them once
per expiry, and this client adds the bearer token, one refresh-and-retry on a 401
(docs/amocrm.md#401-on-an-api-call) and pagination (docs/amocrm.md#batches-and-pagination).
"""

import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import requests

from . import errors
from .models import Account, SyncLog
from .tokens import BearerToken, account_needs_reauth
from .transport import RATE_LIMIT_PAUSE_SECONDS, Transport, parse_json
from .values import embedded

__all__ = ["PAGE_LIMIT", "RATE_LIMIT_PAUSE_SECONDS", "AmoCRMClient"]

logger = logging.getLogger(__name__)

PAGE_LIMIT = 250


class AmoCRMClient:
    """Calls for one connected account. Public methods are named after the API operation they perform."""

    def __init__(self, account: Account, *, session: requests.Session | None = None,
                 log_context: dict | None = None):
        self.transport = Transport(account, session=session, log_context=log_context)
        self.bearer = BearerToken(account.pk)

    @property
    def account(self) -> Account:
        return self.transport.account

    @property
    def logs(self) -> list[SyncLog]:
        """Every sync-log row this client wrote, so callers can link them to their leads or sales."""
        return self.transport.logs

    # ------------------------------------------------------------------ authenticated calls

    def request(self, method: str, path: str, *, operation: str, params=None, json_body=None,
                context: dict | None = None):
        """An authenticated API call; returns the parsed JSON (None for 204).

        A 401 refreshes the token once (under the per-account lock) and retries once; a second
        401 means the connection needs re-authorization.
        """
        call = {"operation": operation, "params": params, "json_body": json_body, "context": context,
                "credentials": self.bearer}
        try:
            response = self.transport.send(method, path, **call)
        except errors.Unauthorized as exc:
            if self.bearer.current().long_lived:
                raise account_needs_reauth(
                    account_id=self.account.pk,
                    message="The long-lived token was rejected (401): issue a new one and reconnect.") from exc
            self.bearer.refresh()
            try:
                response = self.transport.send(method, path, **call)
            except errors.Unauthorized as again:
                raise account_needs_reauth(
                    account_id=self.account.pk,
                    message="amoCRM rejected a freshly refreshed token (401 twice): reconnect the account.") from again
        return parse_json(response)

    def paginate(self, path: str, *, operation: str, key: str, params: dict | None = None) -> Iterator[dict]:
        """Yield every entity of a list endpoint, following `_links.next` until it is absent or a 204."""
        params = {**(params or {}), "page": 1, "limit": PAGE_LIMIT}
        origin = self.transport.origin()
        while True:
            data = self.request("GET", path, operation=operation, params=params)
            if not isinstance(data, dict):
                return
            yield from embedded(data, key)
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
        """GET /api/v4/account: the account's id, name, subdomain and currency.

        https://www.amocrm.ru/developers/content/crm_platform/account-info
        """
        return self.request("GET", "/api/v4/account", operation="account.get") or {}

    def pipelines_list(self) -> list[dict]:
        """GET /api/v4/leads/pipelines: the pipelines with their stages.

        https://www.amocrm.ru/developers/content/crm_platform/leads_pipelines
        """
        return embedded(self.request("GET", "/api/v4/leads/pipelines", operation="pipelines.list"), "pipelines")

    def users_list(self) -> list[dict]:
        """GET /api/v4/users, every page.

        https://www.amocrm.ru/developers/content/crm_platform/users-api
        """
        return list(self.paginate("/api/v4/users", operation="users.list", key="users"))

    def lead_custom_fields_list(self) -> list[dict]:
        """GET /api/v4/leads/custom_fields, every page: the deals' custom fields.

        https://www.amocrm.ru/developers/content/crm_platform/custom-fields
        """
        return list(self.paginate("/api/v4/leads/custom_fields", operation="custom_fields.list", key="custom_fields"))

    def contact_custom_fields_list(self) -> list[dict]:
        """GET /api/v4/contacts/custom_fields, every page: the contacts' custom fields.

        https://www.amocrm.ru/developers/content/crm_platform/custom-fields
        """
        return list(self.paginate("/api/v4/contacts/custom_fields", operation="custom_fields.list",
                                  key="custom_fields"))

    def contacts_search(self, query: str, *, with_leads: bool = False, context: dict | None = None) -> list[dict]:
        """GET /api/v4/contacts?query=: fuzzy full-text search (204 when nothing matches).

        `with_leads` embeds the ids of each contact's deals, at no extra request.
        https://www.amocrm.ru/developers/content/crm_platform/contacts-api
        """
        params = {"query": query, "limit": 50, **({"with": "leads"} if with_leads else {})}
        data = self.request("GET", "/api/v4/contacts", operation="contacts.search", params=params, context=context)
        return embedded(data, "contacts")

    def contacts_with_leads(self, contact_ids: list[int], *, context: dict | None = None) -> list[dict]:
        """GET /api/v4/contacts?filter[id][]=…&with=leads: the contacts with the ids of their deals, 250 a request.

        https://www.amocrm.ru/developers/content/crm_platform/contacts-api
        """
        found = []
        for start in range(0, len(contact_ids), PAGE_LIMIT):
            chunk = [int(contact_id) for contact_id in contact_ids[start:start + PAGE_LIMIT]]
            data = self.request("GET", "/api/v4/contacts", operation="contacts.list", context=context,
                                params={"filter[id][]": chunk, "with": "leads", "limit": PAGE_LIMIT})
            found += embedded(data, "contacts")
        return found

    def tasks_create(self, tasks: list[dict], *, context: dict | None = None) -> list[dict]:
        """POST /api/v4/tasks: tasks (here: on deals), an array per call.

        https://www.amocrm.ru/developers/content/crm_platform/tasks-api
        """
        data = self.request("POST", "/api/v4/tasks", operation="tasks.create", json_body=tasks, context=context)
        return embedded(data, "tasks")

    def leads_complex_create(self, deals: list[dict], *, context: dict | None = None) -> list[dict]:
        """POST /api/v4/leads/complex: deals with their contact, at most 50 per call.

        https://www.amocrm.ru/developers/content/crm_platform/leads-api#leads-complex-add
        """
        return self.request("POST", "/api/v4/leads/complex", operation="leads.complex", json_body=deals,
                            context=context) or []

    def lead_notes_create(self, notes: list[dict], *, context: dict | None = None) -> list[dict]:
        """POST /api/v4/leads/notes: notes on deals.

        https://www.amocrm.ru/developers/content/crm_platform/events-and-notes
        """
        data = self.request("POST", "/api/v4/leads/notes", operation="notes.create", json_body=notes,
                            context=context)
        return embedded(data, "notes")

    def unsorted_forms_create(self, items: list[dict], *, context: dict | None = None) -> list[dict]:
        """POST /api/v4/leads/unsorted/forms: incoming leads waiting in the unsorted stage.

        https://www.amocrm.ru/developers/content/crm_platform/unsorted-api
        """
        data = self.request("POST", "/api/v4/leads/unsorted/forms", operation="unsorted.create", json_body=items,
                            context=context)
        return embedded(data, "unsorted")

    def lead_get(self, deal_id: int, *, with_contacts: bool = True, context: dict | None = None) -> dict | None:
        """GET /api/v4/leads/{id}?with=contacts: one deal; None when it no longer exists.

        https://www.amocrm.ru/developers/content/crm_platform/leads-api#lead-detail
        """
        params = {"with": "contacts"} if with_contacts else None
        try:
            # int(): only a number ever goes into the path.
            return self.request("GET", f"/api/v4/leads/{int(deal_id)}", operation="leads.get", params=params,
                                context=context)
        except errors.NotFound:
            return None

    def leads_list_by_ids(self, deal_ids: list[int]) -> Iterator[dict]:
        """GET /api/v4/leads?filter[id][]=…&with=contacts, 250 ids per request; deleted deals are left out.

        https://www.amocrm.ru/developers/content/crm_platform/leads-api#leads-list
        """
        for start in range(0, len(deal_ids), PAGE_LIMIT):
            chunk = [int(deal_id) for deal_id in deal_ids[start:start + PAGE_LIMIT]]
            yield from self.paginate("/api/v4/leads", operation="leads.list", key="leads",
                                     params={"filter[id][]": chunk, "with": "contacts"})

    def leads_updated_since(self, since_ts: int) -> Iterator[dict]:
        """GET /api/v4/leads?filter[updated_at][from]=&with=contacts,loss_reason, every page (reconciliation).

        The deals changed since; lost ones carry their loss reason (docs/amocrm.md#entities).
        https://www.amocrm.ru/developers/content/crm_platform/leads-api#leads-list
        """
        return self.paginate("/api/v4/leads", operation="leads.list", key="leads",
                             params={"filter[updated_at][from]": int(since_ts), "with": "contacts,loss_reason"})

    def webhooks_list(self) -> list[dict]:
        """GET /api/v4/webhooks: the account's webhook subscriptions.

        https://www.amocrm.ru/developers/content/crm_platform/webhooks-api
        """
        return embedded(self.request("GET", "/api/v4/webhooks", operation="webhooks.list"), "webhooks")

    def webhook_subscribe(self, destination: str, settings_: list[str]) -> dict:
        """POST /api/v4/webhooks {destination, settings, sort}: subscribe a URL to events.

        https://www.amocrm.ru/developers/content/crm_platform/webhooks-api
        """
        return self.request("POST", "/api/v4/webhooks", operation="webhooks.subscribe",
                            json_body={"destination": destination, "settings": settings_, "sort": 10}) or {}

    def webhook_unsubscribe(self, destination: str) -> None:
        """DELETE /api/v4/webhooks {destination}: unsubscribe a URL.

        https://www.amocrm.ru/developers/content/crm_platform/webhooks-api
        """
        self.request("DELETE", "/api/v4/webhooks", operation="webhooks.unsubscribe",
                     json_body={"destination": destination})
