"""Request validation the way amoCRM does it: the whole batch is checked, errors carry request_id and path.

Every `check_*` function takes one element of a request, appends what is wrong to `problems` (dicts
with `code`, `path`, `detail`) and returns the normalized changes the store applies. A batch with
any problem is rejected as a whole with amoCRM's `validation-errors` answer (docs/amocrm.md#validation-errors).
"""

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

from .catalog import Catalog, CustomField, FieldSet, Pipeline
from .entities import Deal, EntityStore
from .wire import Response, bad_request, problem

NOT_SUPPORTED_CHOICE = "NotSupportedChoice"
INVALID_TYPE = "InvalidType"
FIELD_MISSING = "FieldMissing"
NOT_FOUND = "NotFound"

WRITE_BATCH_LIMIT = 250
COMPLEX_BATCH_LIMIT = 50

TEXT_TYPES = frozenset({"text", "textarea", "url", "tracking_data", "streetaddress"})
CHOICE_TYPES = frozenset({"select", "radiobutton"})
NOTE_TYPES = frozenset({"common", "call_in", "call_out", "service_message", "extended_service_message",
                        "message_cashier", "geolocation", "sms_in", "sms_out", "attachment"})
WEBHOOK_SETTINGS = frozenset(
    f"{action}_{entity}"
    for entity in ("lead", "contact", "company", "customer", "task")
    for action in ("add", "update", "delete", "restore", "status", "responsible", "note")
) | {"add_talk", "update_talk", "add_message", "add_chat_template_review"}

Problems = list[dict]
T = TypeVar("T")


class ValidationFailed(Exception):
    """A rejected batch; `response()` is amoCRM's 400 answer for it."""

    def __init__(self, failures: list[dict]) -> None:
        super().__init__("Request validation failed")
        self.failures = failures

    def response(self) -> Response:
        return problem(400, "Bad Request", "Request validation failed", **{"validation-errors": self.failures})


class BatchRejected(Exception):
    """The request as a whole is unacceptable (not an array, too many elements)."""

    def response(self) -> Response:
        return bad_request(str(self))


def require_batch(body: Any, *, limit: int) -> list:
    if not isinstance(body, list):
        raise ValidationFailed([{"request_id": "0", "errors": [
            _error(INVALID_TYPE, "", "This value should be of type array.")]}])
    if not body:
        raise BatchRejected("The request contains no entities")
    if len(body) > limit:
        raise BatchRejected(f"Too many entities in one request: {len(body)}, at most {limit} are allowed")
    return body


def check_batch(items: list, check: Callable[[Any, Problems], T]) -> list[tuple[str, T]]:
    """(request_id, normalized element) for every element, or ValidationFailed listing every bad one."""
    results, failures = [], []
    for index, item in enumerate(items):
        problems: Problems = []
        request_id = _request_id(item, index, problems)
        if isinstance(item, dict):
            normalized = check(item, problems)
        else:
            normalized = None
            problems.append(_error(INVALID_TYPE, "", "This value should be of type object."))
        if problems:
            failures.append({"request_id": request_id, "errors": problems})
        results.append((request_id, normalized))
    if failures:
        raise ValidationFailed(failures)
    return results


def check_single(item: Any, check: Callable[[Any, Problems], T]) -> T:
    """One object (PATCH /leads/{id}): validated like a one-element batch."""
    if not isinstance(item, dict):
        raise ValidationFailed([{"request_id": "0", "errors": [
            _error(INVALID_TYPE, "", "This value should be of type object.")]}])
    return check_batch([item], check)[0][1]


# ---------------------------------------------------------------------------------------------
# Deals
# ---------------------------------------------------------------------------------------------


def check_deal(item: dict, problems: Problems, *, catalog: Catalog, store: EntityStore, deal: Deal | None = None,
               prefix: str = "", resolve_stage: bool = True) -> dict:
    """Changes for a new deal (`deal` None: always resolves a stage) or for an existing one."""
    changes: dict = {}
    _check_text(item, "name", changes, problems, prefix)
    if "price" in item:
        price = item["price"]
        if price is None:
            changes["price"] = 0
        elif not is_int(price) or price < 0:
            problems.append(_error(INVALID_TYPE, prefix + "price", "This value should be of type int."))
        else:
            changes["price"] = price
    _check_user(item, "responsible_user_id", changes, problems, prefix, catalog)
    for name in ("created_at", "updated_at", "closed_at"):
        _check_timestamp(item, name, changes, problems, prefix)
    if resolve_stage:
        _check_stage(item, changes, problems, prefix, catalog, deal)
    fields = check_custom_fields(item.get("custom_fields_values"), catalog.lead_fields, problems,
                                 prefix + "custom_fields_values")
    if fields:
        changes["custom_fields"] = fields
    _check_tag_changes(item, changes, problems, prefix, store, "leads")
    return changes


def _check_stage(item: dict, changes: dict, problems: Problems, prefix: str, catalog: Catalog,
                 deal: Deal | None) -> None:
    """Resolve (pipeline_id, status_id) like amoCRM: a pipeline alone → its first stage; no stage → main pipeline."""
    has_pipeline, has_status = "pipeline_id" in item, "status_id" in item
    if deal is not None and not has_pipeline and not has_status:
        return
    pipeline: Pipeline | None = None
    if has_pipeline:
        if not is_int(item["pipeline_id"]):
            problems.append(_error(INVALID_TYPE, prefix + "pipeline_id", "This value should be of type int."))
            return
        pipeline = catalog.pipeline(item["pipeline_id"])
        if pipeline is None:
            problems.append(_error(NOT_SUPPORTED_CHOICE, prefix + "pipeline_id",
                                   f"Pipeline {item['pipeline_id']} does not exist"))
            return
    if not has_status:
        if deal is not None and pipeline.id == deal.pipeline_id:
            return  # naming the deal's own pipeline moves nothing
        target = pipeline or catalog.main_pipeline
        changes["pipeline_id"], changes["status_id"] = target.id, target.first_stage.id
        return
    status_id = item["status_id"]
    if not is_int(status_id):
        problems.append(_error(INVALID_TYPE, prefix + "status_id", "This value should be of type int."))
        return
    if pipeline is None:
        # Won/lost exist in every pipeline: stay in the deal's own one (or the main one for a new deal).
        current = catalog.pipeline(deal.pipeline_id) if deal else catalog.main_pipeline
        owners = catalog.pipelines_with_status(status_id)
        pipeline = current if current in owners else (owners[0] if len(owners) == 1 else None)
    if pipeline is None or pipeline.status(status_id) is None:
        where = f" in pipeline {pipeline.id}" if pipeline else ""
        problems.append(_error(NOT_SUPPORTED_CHOICE, prefix + "status_id", f"Status {status_id} does not exist{where}"))
        return
    changes["pipeline_id"], changes["status_id"] = pipeline.id, status_id


def check_linked_contacts(item: dict, problems: Problems, *, store: EntityStore, prefix: str = "") -> list[int]:
    """`_embedded.contacts` of a deal in POST/PATCH /leads: links to existing contacts by id."""
    contacts = _embedded(item, problems, prefix).get("contacts")
    if contacts is None:
        return []
    path = prefix + "_embedded.contacts"
    if not isinstance(contacts, list):
        problems.append(_error(INVALID_TYPE, path, "This value should be of type array."))
        return []
    ids = []
    for index, contact in enumerate(contacts):
        contact_id = contact.get("id") if isinstance(contact, dict) else None
        if not is_int(contact_id):
            problems.append(_error(INVALID_TYPE, f"{path}.{index}.id", "This value should be of type int."))
        elif contact_id not in store.contacts:
            problems.append(_error(NOT_FOUND, f"{path}.{index}.id", f"Contact {contact_id} not found"))
        else:
            ids.append(contact_id)
    return ids


def check_complex_embedded(item: dict, problems: Problems, *, catalog: Catalog, store: EntityStore,
                           prefix: str = "") -> tuple[tuple[str, Any] | None, tuple[str, Any] | None]:
    """The one contact and one company of a `leads/complex` deal: ("existing", id) or ("new", changes/name)."""
    embedded = _embedded(item, problems, prefix)
    contact = company = None
    contacts = embedded.get("contacts")
    if contacts is not None:
        path = prefix + "_embedded.contacts"
        if not isinstance(contacts, list):
            problems.append(_error(INVALID_TYPE, path, "This value should be of type array."))
        elif len(contacts) > 1:
            problems.append(_error(NOT_SUPPORTED_CHOICE, path, "A complex deal takes at most one contact"))
        elif contacts:
            contact = _existing_or_new(contacts[0], f"{path}.0", problems, exists=lambda key: key in store.contacts,
                                       create=lambda raw: check_contact(raw, problems, catalog=catalog, store=store,
                                                                        prefix=f"{path}.0."))
    companies = embedded.get("companies")
    if companies is not None:
        path = prefix + "_embedded.companies"
        if not isinstance(companies, list):
            problems.append(_error(INVALID_TYPE, path, "This value should be of type array."))
        elif len(companies) > 1:
            problems.append(_error(NOT_SUPPORTED_CHOICE, path, "A complex deal takes at most one company"))
        elif companies:
            company = _existing_or_new(companies[0], f"{path}.0", problems,
                                       exists=lambda key: key in store.companies,
                                       create=lambda raw: _company_name(raw, problems, f"{path}.0."))
    return contact, company


def _existing_or_new(raw: Any, path: str, problems: Problems, *, exists: Callable[[int], bool],
                     create: Callable[[dict], Any]) -> tuple[str, Any] | None:
    if not isinstance(raw, dict):
        problems.append(_error(INVALID_TYPE, path, "This value should be of type object."))
        return None
    if "id" in raw:
        if not is_int(raw["id"]):
            problems.append(_error(INVALID_TYPE, path + ".id", "This value should be of type int."))
        elif not exists(raw["id"]):
            problems.append(_error(NOT_FOUND, path + ".id", f"Entity {raw['id']} not found"))
        else:
            return ("existing", raw["id"])
        return None
    return ("new", create(raw))


def _company_name(raw: dict, problems: Problems, prefix: str) -> str:
    changes: dict = {}
    _check_text(raw, "name", changes, problems, prefix)
    return changes.get("name", "")


# ---------------------------------------------------------------------------------------------
# Contacts, notes, unsorted, webhooks
# ---------------------------------------------------------------------------------------------


def check_contact(item: dict, problems: Problems, *, catalog: Catalog, store: EntityStore, prefix: str = "") -> dict:
    changes: dict = {}
    for name in ("name", "first_name", "last_name"):
        _check_text(item, name, changes, problems, prefix)
    _check_user(item, "responsible_user_id", changes, problems, prefix, catalog)
    for name in ("created_at", "updated_at"):
        _check_timestamp(item, name, changes, problems, prefix)
    fields = check_custom_fields(item.get("custom_fields_values"), catalog.contact_fields, problems,
                                 prefix + "custom_fields_values")
    if fields:
        changes["custom_fields"] = fields
    _check_tag_changes(item, changes, problems, prefix, store, "contacts")
    return changes


def check_note(item: dict, problems: Problems, *, store: EntityStore, entity_id: int | None = None) -> dict:
    """A deal note; `entity_id` comes from the path for POST /leads/{id}/notes."""
    if entity_id is None:
        entity_id = item.get("entity_id")
        if not is_int(entity_id):
            problems.append(_error(FIELD_MISSING if entity_id is None else INVALID_TYPE, "entity_id",
                                   "This value should be of type int."))
            entity_id = None
    if entity_id is not None and store.live_deal(entity_id) is None:
        problems.append(_error(NOT_FOUND, "entity_id", f"Lead {entity_id} not found"))
    note_type = item.get("note_type")
    if note_type not in NOTE_TYPES:
        problems.append(_error(NOT_SUPPORTED_CHOICE, "note_type", "The value you selected is not a valid choice."))
    params = item.get("params")
    if not isinstance(params, dict):
        problems.append(_error(INVALID_TYPE if params is not None else FIELD_MISSING, "params",
                               "This value should be of type object."))
        params = {}
    elif note_type == "common" and not (isinstance(params.get("text"), str) and params["text"].strip()):
        problems.append(_error(FIELD_MISSING, "params.text", "A common note needs a non-empty text"))
    return {"entity_id": entity_id, "note_type": note_type, "params": params}


TASK_ENTITY_TYPES = ("leads", "contacts", "companies", "customers")
# Standard task types (1 call, 2 meeting); an account may add its own, which the sandbox does not have.
TASK_TYPES = (1, 2)
NOT_A_CHOICE = "The value you selected is not a valid choice."


def check_task(item: dict, problems: Problems, *, catalog: Catalog, store: EntityStore) -> dict:
    """One element of POST /api/v4/tasks: text and complete_till required; a deal it names must exist."""
    task: dict = {"entity_id": None, "entity_type": None, "task_type_id": 1,
                  "responsible_user_id": catalog.admin.id}
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append(_error(FIELD_MISSING if text is None else INVALID_TYPE, "text",
                               "This value should be a non-empty string."))
    task["text"] = text
    if not is_int(item.get("complete_till")) or item["complete_till"] < 0:
        problems.append(_error(FIELD_MISSING if "complete_till" not in item else INVALID_TYPE, "complete_till",
                               "This value should be a unix timestamp."))
    task["complete_till"] = item.get("complete_till")
    if "entity_id" in item or "entity_type" in item:
        entity_type, entity_id = item.get("entity_type"), item.get("entity_id")
        if entity_type not in TASK_ENTITY_TYPES:
            problems.append(_error(NOT_SUPPORTED_CHOICE, "entity_type", NOT_A_CHOICE))
        if not is_int(entity_id):
            problems.append(_error(INVALID_TYPE, "entity_id", "This value should be of type int."))
        elif entity_type == "leads" and store.live_deal(entity_id) is None:
            problems.append(_error(NOT_FOUND, "entity_id", f"Lead {entity_id} not found"))
        elif entity_type == "contacts" and entity_id not in store.contacts:
            problems.append(_error(NOT_FOUND, "entity_id", f"Contact {entity_id} not found"))
        task.update(entity_type=entity_type, entity_id=entity_id)
    if "task_type_id" in item:
        if item["task_type_id"] not in TASK_TYPES or not is_int(item["task_type_id"]):
            problems.append(_error(NOT_SUPPORTED_CHOICE, "task_type_id", NOT_A_CHOICE))
        else:
            task["task_type_id"] = item["task_type_id"]
    _check_user(item, "responsible_user_id", task, problems, "", catalog)
    return task


def check_unsorted_form(item: dict, problems: Problems, *, catalog: Catalog, store: EntityStore) -> dict:
    form: dict = {}
    for name in ("source_uid", "source_name"):
        value = item.get(name)
        if not isinstance(value, str) or not value:
            problems.append(_error(FIELD_MISSING if value is None else INVALID_TYPE, name,
                                   "This value should be a non-empty string."))
        form[name] = value
    pipeline = catalog.main_pipeline
    if "pipeline_id" in item:
        found = catalog.pipeline(item["pipeline_id"]) if is_int(item["pipeline_id"]) else None
        if found is None:
            problems.append(_error(NOT_SUPPORTED_CHOICE, "pipeline_id",
                                   f"Pipeline {item['pipeline_id']} does not exist"))
        else:
            pipeline = found
    form["pipeline"] = pipeline
    _check_timestamp(item, "created_at", form, problems, "")
    form["metadata"] = _check_form_metadata(item.get("metadata"), problems)
    embedded = _embedded(item, problems, "")
    leads = embedded.get("leads") or []
    contacts = embedded.get("contacts") or []
    if not isinstance(leads, list) or len(leads) > 1:
        problems.append(_error(INVALID_TYPE, "_embedded.leads", "An incoming lead takes an array of one deal"))
        leads = []
    if not isinstance(contacts, list):
        problems.append(_error(INVALID_TYPE, "_embedded.contacts", "This value should be of type array."))
        contacts = []
    form["deal"] = {}
    for index, deal in enumerate(leads):
        if not isinstance(deal, dict):
            problems.append(_error(INVALID_TYPE, f"_embedded.leads.{index}", "This value should be of type object."))
            continue
        form["deal"] = check_deal(deal, problems, catalog=catalog, store=store, prefix=f"_embedded.leads.{index}.",
                                  resolve_stage=False)
    form["contacts"] = []
    for index, contact in enumerate(contacts):
        if not isinstance(contact, dict):
            problems.append(_error(INVALID_TYPE, f"_embedded.contacts.{index}", "This value should be of type object."))
            continue
        form["contacts"].append(check_contact(contact, problems, catalog=catalog, store=store,
                                              prefix=f"_embedded.contacts.{index}."))
    return form


def _check_form_metadata(metadata: Any, problems: Problems) -> dict:
    if not isinstance(metadata, dict):
        problems.append(_error(FIELD_MISSING if metadata is None else INVALID_TYPE, "metadata",
                               "This value should be of type object."))
        return {}
    for name in ("form_id", "form_name", "form_page"):
        value = metadata.get(name)
        if not (isinstance(value, str) and value) and not (name == "form_id" and is_int(value)):
            problems.append(_error(FIELD_MISSING if value is None else INVALID_TYPE, f"metadata.{name}",
                                   "This value should be a non-empty string."))
    if not is_int(metadata.get("form_sent_at")):
        problems.append(_error(FIELD_MISSING if metadata.get("form_sent_at") is None else INVALID_TYPE,
                               "metadata.form_sent_at", "This value should be of type int."))
    for name in ("ip", "referer", "visitor_uid"):
        if name in metadata and not isinstance(metadata[name], str):
            problems.append(_error(INVALID_TYPE, f"metadata.{name}", "This value should be of type string."))
    return metadata


def check_webhook_subscription(item: dict, problems: Problems) -> dict:
    destination = item.get("destination")
    parsed = urlparse(destination) if isinstance(destination, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        problems.append(_error(INVALID_TYPE if destination is not None else FIELD_MISSING, "destination",
                               "This value should be an absolute http(s) URL."))
    settings = item.get("settings")
    if not isinstance(settings, list) or not settings:
        problems.append(_error(INVALID_TYPE if settings is not None else FIELD_MISSING, "settings",
                               "This value should be a non-empty array."))
        settings = []
    for index, setting in enumerate(settings):
        if setting not in WEBHOOK_SETTINGS:
            problems.append(_error(NOT_SUPPORTED_CHOICE, f"settings.{index}",
                                   "The value you selected is not a valid choice."))
    sort = item.get("sort", 1)
    if not is_int(sort):
        problems.append(_error(INVALID_TYPE, "sort", "This value should be of type int."))
    return {"destination": destination, "settings": list(dict.fromkeys(settings)), "sort": sort}


# ---------------------------------------------------------------------------------------------
# Custom fields and tags
# ---------------------------------------------------------------------------------------------


def check_custom_fields(raw: Any, field_set: FieldSet, problems: Problems,
                        path: str) -> list[tuple[CustomField, list[dict] | None]]:
    """Normalized (field, values in read shape) pairs; `values: null` (clear the field) gives None."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(_error(INVALID_TYPE, path, "This value should be of type array."))
        return []
    result = []
    for index, entry in enumerate(raw):
        here = f"{path}.{index}"
        if not isinstance(entry, dict):
            problems.append(_error(INVALID_TYPE, here, "This value should be of type object."))
            continue
        custom_field = _resolve_field(entry, field_set, problems, here)
        if custom_field is None:
            continue
        values = entry.get("values")
        if values is None and "values" in entry:
            result.append((custom_field, None))
            continue
        if not isinstance(values, list) or not values:
            problems.append(_error(INVALID_TYPE if values is not None else FIELD_MISSING, here + ".values",
                                   "This value should be a non-empty array."))
            continue
        if custom_field.type in CHOICE_TYPES and len(values) > 1:
            problems.append(_error(NOT_SUPPORTED_CHOICE, here + ".values", "This field takes a single value."))
            continue
        checked = [_check_value(value, custom_field, problems, f"{here}.values.{position}")
                   for position, value in enumerate(values)]
        if all(value is not None for value in checked):
            result.append((custom_field, checked))
    return result


def _resolve_field(entry: dict, field_set: FieldSet, problems: Problems, path: str) -> CustomField | None:
    if "field_id" in entry:
        field_id = entry["field_id"]
        if not is_int(field_id):
            problems.append(_error(INVALID_TYPE, path + ".field_id", "This value should be of type int."))
            return None
        found = field_set.by_id(field_id)
        if found is None:
            problems.append(_error(NOT_SUPPORTED_CHOICE, path + ".field_id",
                                   f"Field {field_id} does not exist in this account"))
        return found
    if "field_code" in entry:
        code = entry["field_code"]
        found = field_set.by_code(code) if isinstance(code, str) else None
        if found is None:
            problems.append(_error(NOT_SUPPORTED_CHOICE, path + ".field_code",
                                   f"Field code {code!r} does not exist in this account"))
        return found
    problems.append(_error(FIELD_MISSING, path + ".field_id", "Either field_id or field_code is required."))
    return None


def _check_value(raw: Any, custom_field: CustomField, problems: Problems, path: str) -> dict | None:
    """One value in read shape, or None after recording why it is unacceptable."""
    if not isinstance(raw, dict):
        problems.append(_error(INVALID_TYPE, path, "This value should be of type object."))
        return None
    kind, value = custom_field.type, raw.get("value")
    if kind in TEXT_TYPES:
        if isinstance(value, str):
            return {"value": value}
        problems.append(_error(INVALID_TYPE, path + ".value", "This value should be of type string."))
    elif kind == "numeric":
        if (is_int(value) or isinstance(value, float)) or (isinstance(value, str) and _is_number(value)):
            return {"value": str(value)}
        problems.append(_error(INVALID_TYPE, path + ".value", "This value should be a number."))
    elif kind == "checkbox":
        if isinstance(value, bool):
            return {"value": value}
        problems.append(_error(INVALID_TYPE, path + ".value", "This value should be of type bool."))
    elif kind in ("date", "date_time", "birthday"):
        if is_int(value):
            return {"value": value}
        problems.append(_error(INVALID_TYPE, path + ".value", "This value should be a unix timestamp."))
    elif kind == "multitext":
        return _check_multitext(raw, value, custom_field, problems, path)
    else:
        return _check_choice(raw, value, custom_field, problems, path)
    return None


def _check_multitext(raw: dict, value: Any, custom_field: CustomField, problems: Problems, path: str) -> dict | None:
    """PHONE / EMAIL: a string value and an enum from the fixed list (WORK when none is given)."""
    enum = custom_field.enum_by_value("WORK")
    if "enum_id" in raw:
        enum = custom_field.enum_by_id(raw["enum_id"]) if is_int(raw["enum_id"]) else None
        if enum is None:
            problems.append(_error(NOT_SUPPORTED_CHOICE, path + ".enum_id",
                                   "The value you selected is not a valid choice."))
    elif "enum_code" in raw:
        enum = custom_field.enum_by_value(raw["enum_code"]) if isinstance(raw["enum_code"], str) else None
        if enum is None:
            allowed = ", ".join(item.value for item in custom_field.enums)
            problems.append(_error(NOT_SUPPORTED_CHOICE, path + ".enum_code",
                                   f"The value you selected is not a valid choice: use one of {allowed}."))
    if not isinstance(value, str) or not value.strip():
        problems.append(_error(INVALID_TYPE, path + ".value", "This value should be a non-empty string."))
        return None
    return {"value": value, "enum_id": enum.id, "enum_code": enum.value} if enum else None


def _check_choice(raw: dict, value: Any, custom_field: CustomField, problems: Problems, path: str) -> dict | None:
    """select / radiobutton / multiselect: an enum given by enum_id or by its exact text."""
    enum = None
    if "enum_id" in raw:
        enum = custom_field.enum_by_id(raw["enum_id"]) if is_int(raw["enum_id"]) else None
        where = ".enum_id"
    elif "enum_code" in raw:
        where = ".enum_code"  # these enums have no codes: any code is unsupported
    else:
        enum = custom_field.enum_by_value(value) if isinstance(value, str) else None
        where = ".value"
    if enum is None:
        problems.append(_error(NOT_SUPPORTED_CHOICE, path + where, "The value you selected is not a valid choice."))
        return None
    return {"value": enum.value, "enum_id": enum.id, "enum_code": None}


def _check_tag_changes(item: dict, changes: dict, problems: Problems, prefix: str, store: EntityStore,
                       entity_type: str) -> None:
    """`_embedded.tags` replaces the tag set; `tags_to_add` / `tags_to_delete` edit it."""
    embedded = _embedded(item, problems, prefix)
    if "tags" in embedded:
        changes["tags"] = check_tags(embedded["tags"], store, entity_type, problems, prefix + "_embedded.tags")
    for key in ("tags_to_add", "tags_to_delete"):
        if key in item:
            changes[key] = check_tags(item[key], store, entity_type, problems, prefix + key)


def check_tags(raw: Any, store: EntityStore, entity_type: str, problems: Problems, path: str) -> list[str]:
    """Tag names from `[{"name": ...}]` or `[{"id": ...}]` (an id must name an existing tag)."""
    if not isinstance(raw, list):
        problems.append(_error(INVALID_TYPE, path, "This value should be of type array."))
        return []
    names = []
    for index, tag in enumerate(raw):
        here = f"{path}.{index}"
        if isinstance(tag, dict) and isinstance(tag.get("name"), str) and tag["name"].strip():
            names.append(tag["name"].strip())
        elif isinstance(tag, dict) and is_int(tag.get("id")):
            found = store.tag_by_id(entity_type, tag["id"])
            if found is None:
                problems.append(_error(NOT_FOUND, here + ".id", f"Tag {tag['id']} not found"))
            else:
                names.append(found.name)
        else:
            problems.append(_error(INVALID_TYPE, here, "A tag is an object with a name or an id."))
    return names


def check_existing(item: dict, problems: Problems, lookup: Callable[[int], T | None], kind: str) -> T | None:
    """The entity an update names by `id` (PATCH batches), or None after recording why not."""
    entity_id = item.get("id")
    if not is_int(entity_id):
        problems.append(_error(FIELD_MISSING if entity_id is None else INVALID_TYPE, "id",
                               "This value should be of type int."))
        return None
    found = lookup(entity_id)
    if found is None:
        problems.append(_error(NOT_FOUND, "id", f"{kind} {entity_id} not found"))
    return found


# ---------------------------------------------------------------------------------------------
# Small checks
# ---------------------------------------------------------------------------------------------


def _request_id(item: Any, index: int, problems: Problems) -> str:
    if isinstance(item, dict) and "request_id" in item:
        if isinstance(item["request_id"], str):
            return item["request_id"]
        problems.append(_error(INVALID_TYPE, "request_id", "This value should be of type string."))
    return str(index)


def _embedded(item: dict, problems: Problems, prefix: str) -> dict:
    embedded = item.get("_embedded")
    if embedded is None:
        return {}
    if not isinstance(embedded, dict):
        problems.append(_error(INVALID_TYPE, prefix + "_embedded", "This value should be of type object."))
        return {}
    return embedded


def _check_text(item: dict, name: str, changes: dict, problems: Problems, prefix: str) -> None:
    if name not in item:
        return
    if isinstance(item[name], str):
        changes[name] = item[name]
    else:
        problems.append(_error(INVALID_TYPE, prefix + name, "This value should be of type string."))


def _check_user(item: dict, name: str, changes: dict, problems: Problems, prefix: str, catalog: Catalog) -> None:
    if name not in item:
        return
    user_id = item[name]
    if not is_int(user_id):
        problems.append(_error(INVALID_TYPE, prefix + name, "This value should be of type int."))
    elif catalog.user(user_id) is None:
        problems.append(_error(NOT_SUPPORTED_CHOICE, prefix + name, f"User {user_id} does not exist"))
    else:
        changes[name] = user_id


def _check_timestamp(item: dict, name: str, changes: dict, problems: Problems, prefix: str) -> None:
    if name not in item:
        return
    if is_int(item[name]) and item[name] >= 0:
        changes[name] = item[name]
    else:
        problems.append(_error(INVALID_TYPE, prefix + name, "This value should be a unix timestamp."))


def is_int(value: Any) -> bool:
    """An int that is not a bool (JSON true would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _error(code: str, path: str, detail: str) -> dict:
    return {"code": code, "path": path, "detail": detail}
