"""The amoCRM API v4 endpoints a fake account serves (docs/amocrm.md#calling-the-api, #entities).

Every handler runs with the account lock held and the Bearer token already checked; body and
validation errors raised here (BadBody, BatchRejected, ValidationFailed) are turned into amoCRM's
400 answers by the server.
"""

import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from . import validation
from .catalog import CustomField, Pipeline
from .entities import (
    Contact,
    Deal,
    UnsortedLead,
    contact_to_api,
    deal_to_api,
    link,
    task_to_api,
)
from .search import matches
from .state import AccountState
from .validation import Problems, check_batch, check_single, require_batch
from .webhooks_out import lead_event
from .wire import BadBody, Request, Response, Router, hal, no_content, plain_json

routes = Router()

DEFAULT_PAGE_LIMIT = 50
MAX_PAGE_LIMIT = 250

_CURRENCY_SYMBOLS = {"RUB": "₽", "USD": "$", "EUR": "€", "KZT": "₸", "UAH": "₴", "BYN": "Br"}


# ---------------------------------------------------------------------------------------------
# Account metadata
# ---------------------------------------------------------------------------------------------


@routes.route("GET", "/api/v4/account")
def account_info(account: AccountState, request: Request) -> Response:
    admin = account.catalog.admin
    return hal({
        "id": account.account_id,
        "name": account.name,
        "subdomain": account.subdomain,
        "created_at": 1_600_000_000,
        "created_by": admin.id,
        "updated_at": 1_600_000_000,
        "updated_by": admin.id,
        "current_user_id": admin.id,
        "country": "RU",
        "currency": account.currency,
        "currency_symbol": _CURRENCY_SYMBOLS.get(account.currency, account.currency),
        "customers_mode": "disabled",
        "is_unsorted_on": True,
        "mobile_feature_version": 0,
        "is_loss_reason_enabled": bool(account.catalog.loss_reasons),
        "is_helpbot_enabled": False,
        "is_technical_account": False,
        "contact_name_display_order": 1,
        "_links": link(f"{account.origin}/api/v4/account"),
    })


@routes.route("GET", "/api/v4/leads/pipelines")
def pipelines_list(account: AccountState, request: Request) -> Response:
    pipelines = [_pipeline_to_api(pipeline, account) for pipeline in account.catalog.pipelines]
    return hal({"_total_items": len(pipelines), "_links": link(f"{account.origin}/api/v4/leads/pipelines"),
                "_embedded": {"pipelines": pipelines}})


@routes.route("GET", "/api/v4/leads/pipelines/{pipeline_id}")
def pipeline_detail(account: AccountState, request: Request, pipeline_id: int) -> Response:
    pipeline = account.catalog.pipeline(pipeline_id)
    return hal(_pipeline_to_api(pipeline, account)) if pipeline else no_content()


def _pipeline_to_api(pipeline: Pipeline, account: AccountState) -> dict:
    href = f"{account.origin}/api/v4/leads/pipelines/{pipeline.id}"
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "sort": pipeline.sort,
        "is_main": pipeline.is_main,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": account.account_id,
        "_links": link(href),
        "_embedded": {"statuses": [
            {"id": status.id, "name": status.name, "sort": status.sort, "is_editable": status.is_editable,
             "pipeline_id": pipeline.id, "color": status.color, "type": status.type,
             "account_id": account.account_id, "_links": link(f"{href}/statuses/{status.id}")}
            for status in pipeline.statuses
        ]},
    }


@routes.route("GET", "/api/v4/users")
def users_list(account: AccountState, request: Request) -> Response:
    users = [
        {"id": user.id, "name": user.name, "email": user.email, "lang": "ru",
         "rights": {"leads": {"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"},
                    "is_admin": user.is_admin, "is_free": False, "is_active": user.is_active, "group_id": None,
                    "role_id": None, "status_rights": []},
         "_links": link(f"{account.origin}/api/v4/users/{user.id}")}
        for user in account.catalog.users
    ]
    return _page_of(request, users, account=account, path="/api/v4/users", key="users")


@routes.route("GET", "/api/v4/leads/custom_fields")
def lead_fields_list(account: AccountState, request: Request) -> Response:
    fields = [_field_to_api(item, account) for item in account.catalog.lead_fields.fields]
    return _page_of(request, fields, account=account, path="/api/v4/leads/custom_fields", key="custom_fields")


@routes.route("GET", "/api/v4/contacts/custom_fields")
def contact_fields_list(account: AccountState, request: Request) -> Response:
    fields = [_field_to_api(item, account) for item in account.catalog.contact_fields.fields]
    return _page_of(request, fields, account=account, path="/api/v4/contacts/custom_fields", key="custom_fields")


def _field_to_api(custom_field: CustomField, account: AccountState) -> dict:
    return {
        "id": custom_field.id,
        "name": custom_field.name,
        "type": custom_field.type,
        "account_id": account.account_id,
        "code": custom_field.code,
        "sort": custom_field.sort,
        "is_api_only": False,
        "enums": [{"id": enum.id, "value": enum.value, "sort": enum.sort} for enum in custom_field.enums] or None,
        "group_id": custom_field.group_id,
        "required_statuses": [],
        "is_deletable": custom_field.code is None,
        "is_predefined": custom_field.code is not None,
        "entity_type": custom_field.entity_type,
        "remind": None,
        "settings": None,
        "_links": link(f"{account.origin}/api/v4/{custom_field.entity_type}/custom_fields/{custom_field.id}"),
    }


# ---------------------------------------------------------------------------------------------
# Contacts
# ---------------------------------------------------------------------------------------------


@routes.route("GET", "/api/v4/contacts")
def contacts_list(account: AccountState, request: Request) -> Response:
    query = request.arg("query") or ""
    wanted_ids = _filter_ints(request, "filter[id]")
    contacts = [
        contact for contact in account.store.contacts.values()
        if (not wanted_ids or contact.id in wanted_ids) and matches(query, _contact_texts(contact, account))
    ]
    with_leads = "leads" in _with(request)
    return _page_of(request, contacts, account=account, path="/api/v4/contacts", key="contacts",
                    render=lambda contact: contact_to_api(contact, account, with_leads=with_leads))


@routes.route("GET", "/api/v4/contacts/{contact_id}")
def contact_detail(account: AccountState, request: Request, contact_id: int) -> Response:
    # amoCRM answers an unknown id with 204, not 404.
    contact = account.store.contacts.get(contact_id)
    return hal(contact_to_api(contact, account, with_leads="leads" in _with(request))) if contact else no_content()


@routes.route("POST", "/api/v4/contacts")
def contacts_create(account: AccountState, request: Request) -> Response:
    items = require_batch(request.json(), limit=validation.WRITE_BATCH_LIMIT)
    checked = check_batch(items, lambda item, problems: validation.check_contact(
        item, problems, catalog=account.catalog, store=account.store))
    user_id, now = account.catalog.admin.id, account.now()
    created = [(request_id, account.store.create_contact(changes, now=now, user_id=user_id))
               for request_id, changes in checked]
    return hal({"_links": link(f"{account.origin}/api/v4/contacts"), "_embedded": {"contacts": [
        {"id": contact.id, "request_id": request_id, "_links": link(f"{account.origin}/api/v4/contacts/{contact.id}")}
        for request_id, contact in created
    ]}})


@routes.route("PATCH", "/api/v4/contacts")
def contacts_update(account: AccountState, request: Request) -> Response:
    items = require_batch(request.json(), limit=validation.WRITE_BATCH_LIMIT)
    checked = check_batch(items, lambda item, problems: _contact_update(item, problems, account))
    updated = [(request_id, _apply_contact_update(account, contact, changes))
               for request_id, (contact, changes) in checked]
    return hal({"_links": link(f"{account.origin}/api/v4/contacts"), "_embedded": {"contacts": [
        {"id": contact.id, "updated_at": contact.updated_at, "request_id": request_id,
         "_links": link(f"{account.origin}/api/v4/contacts/{contact.id}")}
        for request_id, contact in updated
    ]}})


@routes.route("PATCH", "/api/v4/contacts/{contact_id}")
def contact_update(account: AccountState, request: Request, contact_id: int) -> Response:
    contact, changes = check_single(request.json(), lambda item, problems: _contact_update(
        {**item, "id": contact_id}, problems, account))
    _apply_contact_update(account, contact, changes)
    return hal({"id": contact.id, "updated_at": contact.updated_at,
                "_links": link(f"{account.origin}/api/v4/contacts/{contact.id}")})


def _contact_update(item: dict, problems: Problems, account: AccountState) -> tuple[Contact | None, dict]:
    contact = validation.check_existing(item, problems, account.store.contacts.get, "Contact")
    changes = validation.check_contact(item, problems, catalog=account.catalog, store=account.store)
    return contact, changes


def _apply_contact_update(account: AccountState, contact: Contact, changes: dict) -> Contact:
    account.store.update_contact(contact, changes, now=account.now(), user_id=account.catalog.admin.id)
    return contact


def _contact_texts(contact: Contact, account: AccountState) -> Iterable[str]:
    yield from (contact.name, contact.first_name, contact.last_name)
    yield from _field_texts(contact.custom_fields)
    yield from _tag_names(contact.tag_ids, "contacts", account)


# ---------------------------------------------------------------------------------------------
# Deals
# ---------------------------------------------------------------------------------------------


@routes.route("GET", "/api/v4/leads")
def leads_list(account: AccountState, request: Request) -> Response:
    admits = _deal_filter(request, account)
    deals = [deal for deal in account.store.deals.values() if not deal.is_deleted and admits(deal)]
    field, direction = _order(request)
    deals.sort(key=lambda deal: getattr(deal, field), reverse=direction == "desc")
    wanted = _with(request)
    return _page_of(request, deals, account=account, path="/api/v4/leads", key="leads",
                    render=lambda deal: deal_to_api(deal, account, with_contacts="contacts" in wanted,
                                                    with_loss_reason="loss_reason" in wanted))


def _deal_filter(request: Request, account: AccountState) -> Callable[[Deal], bool]:
    """The `filter[...]` and `query` parameters of GET /leads as one predicate, parsed once."""
    ranges = {name: (_filter_int(request, f"filter[{name}][from]"), _filter_int(request, f"filter[{name}][to]"))
              for name in ("updated_at", "created_at", "closed_at")}
    ranges = {name: bounds for name, bounds in ranges.items() if bounds != (None, None)}
    wanted_ids = _filter_ints(request, "filter[id]")
    wanted_pipelines = _filter_ints(request, "filter[pipeline_id]")
    stages = _filter_stages(request)
    query = request.arg("query") or ""

    def admits(deal: Deal) -> bool:
        for name, (low, high) in ranges.items():
            value = getattr(deal, name)
            if value is None or (low is not None and value < low) or (high is not None and value > high):
                return False
        return ((not wanted_ids or deal.id in wanted_ids)
                and (not wanted_pipelines or deal.pipeline_id in wanted_pipelines)
                and (not stages or (deal.pipeline_id, deal.status_id) in stages)
                and matches(query, _deal_texts(deal, account)))

    return admits


def _deal_texts(deal: Deal, account: AccountState) -> Iterable[str]:
    yield deal.name
    yield from _field_texts(deal.custom_fields)
    yield from _tag_names(deal.tag_ids, "leads", account)


@routes.route("GET", "/api/v4/leads/{lead_id}")
def lead_detail(account: AccountState, request: Request, lead_id: int) -> Response:
    deal = account.store.live_deal(lead_id)
    if deal is None:
        return no_content()  # amoCRM answers an unknown id with 204, not 404
    wanted = _with(request)
    return hal(deal_to_api(deal, account, with_contacts="contacts" in wanted,
                           with_loss_reason="loss_reason" in wanted))


@routes.route("GET", "/api/v4/leads/loss_reasons")
def loss_reasons_list(account: AccountState, request: Request) -> Response:
    """The account's loss reasons (docs/amocrm.md#entities)."""
    reasons = [{"id": reason.id, "name": reason.name, "sort": reason.sort,
                "_links": link(f"{account.origin}/api/v4/leads/loss_reasons/{reason.id}")}
               for reason in account.catalog.loss_reasons]
    if not reasons:
        return no_content()
    return hal({"_links": link(f"{account.origin}/api/v4/leads/loss_reasons"),
                "_embedded": {"loss_reasons": reasons}})


@routes.route("POST", "/api/v4/leads")
def leads_create(account: AccountState, request: Request) -> Response:
    items = require_batch(request.json(), limit=validation.WRITE_BATCH_LIMIT)

    def check(item: dict, problems: Problems) -> dict:
        changes = validation.check_deal(item, problems, catalog=account.catalog, store=account.store)
        changes["contact_ids"] = validation.check_linked_contacts(item, problems, store=account.store)
        return changes

    checked = check_batch(items, check)
    user_id, now = account.catalog.admin.id, account.now()
    created = [(request_id, account.store.create_deal(changes, now=now, user_id=user_id))
               for request_id, changes in checked]
    account.outbox.publish([lead_event("add", deal, account) for _, deal in created], account)
    return hal({"_links": link(f"{account.origin}/api/v4/leads"), "_embedded": {"leads": [
        {"id": deal.id, "request_id": request_id, "_links": link(f"{account.origin}/api/v4/leads/{deal.id}")}
        for request_id, deal in created
    ]}})


@routes.route("PATCH", "/api/v4/leads")
def leads_update(account: AccountState, request: Request) -> Response:
    items = require_batch(request.json(), limit=validation.WRITE_BATCH_LIMIT)
    checked = check_batch(items, lambda item, problems: _deal_update(item, problems, account))
    updated = [(request_id, deal) for request_id, (deal, changes) in checked]
    _apply_deal_updates(account, [(deal, changes) for _, (deal, changes) in checked])
    return hal({"_links": link(f"{account.origin}/api/v4/leads"), "_embedded": {"leads": [
        {"id": deal.id, "updated_at": deal.updated_at, "request_id": request_id,
         "_links": link(f"{account.origin}/api/v4/leads/{deal.id}")}
        for request_id, deal in updated
    ]}})


@routes.route("PATCH", "/api/v4/leads/{lead_id}")
def lead_update(account: AccountState, request: Request, lead_id: int) -> Response:
    deal, changes = check_single(request.json(), lambda item, problems: _deal_update(
        {**item, "id": lead_id}, problems, account))
    _apply_deal_updates(account, [(deal, changes)])
    return hal({"id": deal.id, "updated_at": deal.updated_at,
                "_links": link(f"{account.origin}/api/v4/leads/{deal.id}")})


def _deal_update(item: dict, problems: Problems, account: AccountState) -> tuple[Deal | None, dict]:
    deal = validation.check_existing(item, problems, account.store.live_deal, "Lead")
    changes = validation.check_deal(item, problems, catalog=account.catalog, store=account.store, deal=deal)
    contact_ids = validation.check_linked_contacts(item, problems, store=account.store)
    if contact_ids:
        changes["contact_ids"] = contact_ids
    return deal, changes


def _apply_deal_updates(account: AccountState, updates: list[tuple[Deal, dict]]) -> None:
    """Apply the changes and send the webhook events they cause: update, plus status/responsible."""
    user_id, now = account.catalog.admin.id, account.now()
    events = []
    for deal, changes in updates:
        change = account.store.update_deal(deal, changes, now=now, user_id=user_id)
        if change.status_changed(deal):
            events.append(lead_event("status", deal, account, change))
        if deal.responsible_user_id != change.old_responsible_user_id:
            events.append(lead_event("responsible", deal, account, change))
        if change.changed:
            events.append(lead_event("update", deal, account, change))
    account.outbox.publish(events, account)


@routes.route("POST", "/api/v4/leads/complex")
def leads_create_complex(account: AccountState, request: Request) -> Response:
    """Deals with one contact and one company each, answered as a plain array (docs/amocrm.md#entities)."""
    items = require_batch(request.json(), limit=validation.COMPLEX_BATCH_LIMIT)

    def check(item: dict, problems: Problems) -> tuple[dict, Any, Any]:
        changes = validation.check_deal(item, problems, catalog=account.catalog, store=account.store)
        contact, company = validation.check_complex_embedded(item, problems, catalog=account.catalog,
                                                             store=account.store)
        return changes, contact, company

    checked = check_batch(items, check)
    answer, created = [], []
    for request_id, (changes, contact, company) in checked:
        deal, contact_id = _create_complex_deal(account, changes, contact, company)
        created.append(deal)
        answer.append({"id": deal.id, "contact_id": contact_id, "company_id": deal.company_id,
                       "request_id": [request_id], "merged": False})
    account.outbox.publish([lead_event("add", deal, account) for deal in created], account)
    return plain_json(answer)


def _create_complex_deal(account: AccountState, changes: dict, contact: tuple[str, Any] | None,
                         company: tuple[str, Any] | None) -> tuple[Deal, int | None]:
    """The company first, then the contact in it, then the deal linking both."""
    store, user_id, now = account.store, account.catalog.admin.id, account.now()
    company_id = _existing_or_create(company, lambda name: store.create_company(name, now=now).id)
    company_link = {"company_id": company_id} if company_id else {}
    contact_id = _existing_or_create(contact, lambda contact_changes: store.create_contact(
        {**contact_changes, **company_link}, now=now, user_id=user_id).id)
    deal = store.create_deal({**changes, "contact_ids": [contact_id] if contact_id else [], **company_link},
                             now=now, user_id=user_id)
    return deal, contact_id


def _existing_or_create(choice: tuple[str, Any] | None, create: Callable[[Any], int]) -> int | None:
    if choice is None:
        return None
    kind, value = choice
    return value if kind == "existing" else create(value)


# ---------------------------------------------------------------------------------------------
# Notes, incoming leads, webhook subscriptions
# ---------------------------------------------------------------------------------------------


@routes.route("POST", "/api/v4/leads/notes")
def notes_create(account: AccountState, request: Request) -> Response:
    return _create_notes(account, request, entity_id=None)


@routes.route("POST", "/api/v4/leads/{lead_id}/notes")
def lead_notes_create(account: AccountState, request: Request, lead_id: int) -> Response:
    return _create_notes(account, request, entity_id=lead_id)


def _create_notes(account: AccountState, request: Request, *, entity_id: int | None) -> Response:
    items = require_batch(request.json(), limit=validation.WRITE_BATCH_LIMIT)
    checked = check_batch(items, lambda item, problems: validation.check_note(
        item, problems, store=account.store, entity_id=entity_id))
    user_id, now = account.catalog.admin.id, account.now()
    created = [(request_id, account.store.create_note(**note, now=now, user_id=user_id))
               for request_id, note in checked]
    return hal({"_links": link(f"{account.origin}/api/v4/leads/notes"), "_embedded": {"notes": [
        {"id": note.id, "entity_id": note.entity_id, "request_id": request_id,
         "_links": link(f"{account.origin}/api/v4/leads/{note.entity_id}/notes/{note.id}")}
        for request_id, note in created
    ]}})


@routes.route("POST", "/api/v4/leads/unsorted/forms")
def unsorted_forms_create(account: AccountState, request: Request) -> Response:
    """Incoming leads: a deal in the pipeline's unsorted stage plus its contacts, waiting for a manager."""
    items = require_batch(request.json(), limit=validation.WRITE_BATCH_LIMIT)
    checked = check_batch(items, lambda item, problems: validation.check_unsorted_form(
        item, problems, catalog=account.catalog, store=account.store))
    store, user_id, now = account.store, account.catalog.admin.id, account.now()
    answer, created = [], []
    for request_id, form in checked:
        contacts = [store.create_contact({**changes, "is_unsorted": True}, now=now, user_id=user_id)
                    for changes in form["contacts"]]
        pipeline = form["pipeline"]
        deal = store.create_deal({**form["deal"], "pipeline_id": pipeline.id, "status_id": pipeline.unsorted_stage.id,
                                  "contact_ids": [contact.id for contact in contacts]}, now=now, user_id=user_id)
        item = UnsortedLead(uid=uuid.uuid4().hex, source_uid=form["source_uid"], source_name=form["source_name"],
                            pipeline_id=pipeline.id, created_at=form.get("created_at", now),
                            metadata=form["metadata"], deal_id=deal.id, contact_ids=[c.id for c in contacts])
        store.unsorted[item.uid] = item
        created.append(deal)
        answer.append({
            "uid": item.uid, "account_id": account.account_id, "request_id": request_id,
            "_links": link(f"{account.origin}/api/v4/leads/unsorted/{item.uid}"),
            "_embedded": {
                "leads": [{"id": deal.id, "_links": link(f"{account.origin}/api/v4/leads/{deal.id}")}],
                "contacts": [{"id": contact.id, "_links": link(f"{account.origin}/api/v4/contacts/{contact.id}")}
                             for contact in contacts],
            },
        })
    account.outbox.publish([lead_event("add", deal, account) for deal in created], account)
    return hal({"_total_items": len(answer), "_links": link(f"{account.origin}/api/v4/leads/unsorted/forms"),
                "_embedded": {"unsorted": answer}})


@routes.route("POST", "/api/v4/tasks")
def tasks_create(account: AccountState, request: Request) -> Response:
    """Tasks, an array per request (docs/amocrm.md#entities); answered with their ids and our request_id."""
    items = require_batch(request.json(), limit=validation.WRITE_BATCH_LIMIT)
    checked = check_batch(items, lambda item, problems: validation.check_task(
        item, problems, catalog=account.catalog, store=account.store))
    user_id, now = account.catalog.admin.id, account.now()
    created = [(request_id, account.store.create_task(task, now=now, user_id=user_id)) for request_id, task in checked]
    return hal({"_links": link(f"{account.origin}/api/v4/tasks"), "_embedded": {"tasks": [
        {"id": task.id, "request_id": request_id, "_links": link(f"{account.origin}/api/v4/tasks/{task.id}")}
        for request_id, task in created
    ]}})


@routes.route("GET", "/api/v4/tasks")
def tasks_list(account: AccountState, request: Request) -> Response:
    wanted_entities = _filter_ints(request, "filter[entity_id]")
    entity_type = request.arg("filter[entity_type]")
    tasks = [task for task in account.store.tasks.values()
             if (not wanted_entities or task.entity_id in wanted_entities)
             and (not entity_type or task.entity_type == entity_type)]
    return _page_of(request, tasks, account=account, path="/api/v4/tasks", key="tasks",
                    render=lambda task: task_to_api(task, account))


@routes.route("GET", "/api/v4/webhooks")
def webhooks_list(account: AccountState, request: Request) -> Response:
    subscriptions = [item.to_api(account) for item in account.outbox.subscriptions.values()]
    if not subscriptions:
        return no_content()
    return hal({"_total_items": len(subscriptions), "_links": link(f"{account.origin}/api/v4/webhooks"),
                "_embedded": {"webhooks": subscriptions}})


@routes.route("POST", "/api/v4/webhooks")
def webhook_subscribe(account: AccountState, request: Request) -> Response:
    settings = check_single(request.json(), validation.check_webhook_subscription)
    subscription = account.outbox.subscribe(**settings)
    return hal(subscription.to_api(account))


@routes.route("DELETE", "/api/v4/webhooks")
def webhook_unsubscribe(account: AccountState, request: Request) -> Response:
    payload = request.json_object()
    if not isinstance(payload.get("destination"), str):
        raise BadBody("destination is required")
    account.outbox.unsubscribe(payload["destination"])
    return no_content()


# ---------------------------------------------------------------------------------------------
# Helpers: pagination, filters, search texts
# ---------------------------------------------------------------------------------------------


def _page_of(request: Request, items: list, *, account: AccountState, path: str, key: str,
             render: Callable[[Any], dict] | None = None) -> Response:
    """One page with `_links.next` while more remain; past the end (or nothing at all) 204 with no body.

    `render` turns the items of the page (only those) into their API shape.
    """
    page, limit = _positive_int(request, "page", 1), _positive_int(request, "limit", DEFAULT_PAGE_LIMIT)
    limit = min(limit, MAX_PAGE_LIMIT)
    start = (page - 1) * limit
    chunk = items[start:start + limit]
    if not chunk:
        return no_content()

    def href(number: int) -> dict:
        kept = [(name, value) for name, values in request.query.items() if name not in ("page", "limit")
                for value in values]
        return {"href": f"{account.origin}{path}?{urlencode(kept + [('page', number), ('limit', limit)])}"}

    links = {"self": href(page)}
    if start + limit < len(items):
        links["next"] = href(page + 1)
    links["first"] = href(1)
    if page > 1:
        links["prev"] = href(page - 1)
    rendered = [render(item) for item in chunk] if render else chunk
    return hal({"_page": page, "_links": links, "_embedded": {key: rendered}})


def _positive_int(request: Request, name: str, default: int) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise BadBody(f"{name} must be a positive integer")
    return int(raw)


def _filter_int(request: Request, name: str) -> int | None:
    raw = request.arg(name)
    if raw is None or raw == "":
        return None
    if not raw.lstrip("-").isdigit():
        raise BadBody(f"{name} must be a unix timestamp")
    return int(raw)


def _filter_ints(request: Request, name: str) -> set[int]:
    """`filter[id]=1,2`, `filter[id][]=1&filter[id][]=2` and `filter[id][0]=1` all name ids."""
    values = set()
    for key, raw_values in request.query.items():
        if _is_list_key(key, name):
            values.update(int(part) for raw in raw_values for part in raw.split(",") if part.strip().isdigit())
    return values


def _is_list_key(key: str, name: str) -> bool:
    """`name`, `name[]` or `name[<index>]`."""
    if not key.startswith(name):
        return False
    suffix = key[len(name):]
    return suffix in ("", "[]") or (suffix.startswith("[") and suffix.endswith("]") and suffix[1:-1].isdigit())


def _filter_stages(request: Request) -> set[tuple[int, int]]:
    """`filter[statuses][i][pipeline_id]` + `filter[statuses][i][status_id]` pairs."""
    stages: dict[str, dict[str, int]] = {}
    for key, raw in request.args_starting_with("filter[statuses][").items():
        index, _, field = key.removeprefix("filter[statuses][").partition("][")
        if raw.isdigit():
            stages.setdefault(index, {})[field.rstrip("]")] = int(raw)
    return {(pair["pipeline_id"], pair["status_id"]) for pair in stages.values()
            if "pipeline_id" in pair and "status_id" in pair}


def _order(request: Request) -> tuple[str, str]:
    for field in ("updated_at", "created_at", "id"):
        direction = request.arg(f"order[{field}]")
        if direction in ("asc", "desc"):
            return field, direction
    return "id", "asc"


def _with(request: Request) -> set[str]:
    return {part.strip() for part in (request.arg("with") or "").split(",") if part.strip()}


def _field_texts(stored: dict[int, list[dict]]) -> Iterable[str]:
    for values in stored.values():
        for value in values:
            yield str(value.get("value", ""))


def _tag_names(tag_ids: list[int], entity_type: str, account: AccountState) -> Iterable[str]:
    for tag_id in tag_ids:
        tag = account.store.tag_by_id(entity_type, tag_id)
        if tag:
            yield tag.name

