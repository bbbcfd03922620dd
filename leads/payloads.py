"""What a lead looks like in amoCRM: the deal, contact, note and incoming-lead payloads, and contact matching.

Pure functions over model instances: no queries, no HTTP. The push service feeds them the account's
cached custom fields; shapes follow docs/amocrm.md#entities.
"""

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import phonenumbers
from django.conf import settings
from django.utils.translation import gettext

from amocrm.values import to_int

from . import attribution
from .deal_names import Blank, template_values
from .models import DEFAULT_DEAL_NAME, DEFAULT_TASK_TEXT

# A per-lead tag on every deal we create. A retry after an ambiguous failure looks for it among the
# deals updated since that attempt, so it adopts the first deal instead of creating a second one.
MARKER_PREFIX = "lead-"

# Form UTM field → the code of amoCRM's tracking_data deal field ("Statistics" group) that holds it.
TRACKING_CODES = {
    "utm_source": "UTM_SOURCE",
    "utm_medium": "UTM_MEDIUM",
    "utm_campaign": "UTM_CAMPAIGN",
    "utm_term": "UTM_TERM",
    "utm_content": "UTM_CONTENT",
    "referrer": "UTM_REFERRER",
}
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# Lead attributes a source's field mapping may send to a deal field besides the form's `fields`.
MAPPABLE_ATTRIBUTES = ("name", "phone", "email", "message", "page_url", "referrer", "company", "price", *UTM_FIELDS,
                       *attribution.ID_FIELDS, *attribution.FIRST_TOUCH_COLUMNS.values())

TEXT_TYPES = {"text", "textarea", "url", "streetaddress", "tracking_data", "legal_entity", "monetary"}
CHOICE_TYPES = {"select", "radiobutton", "multiselect"}
DATE_TYPES = {"date", "date_time", "birthday"}
WORKING_HOURS = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})\s*$")
TRUE_WORDS = {"1", "true", "yes", "on", "y", "да"}
FALSE_WORDS = {"0", "false", "no", "off", "n", "нет", ""}


@dataclass(frozen=True)
class FieldInfo:
    """The slice of a cached amoCRM deal custom field the payloads need."""

    id: int
    code: str
    type: str
    enums: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- normalization


def normalize_phone(raw: str, *, region: str | None = None) -> str | None:
    """E.164 (`8 (912) 345-67-89` → `+79123456789` with region RU), or None when it is no valid number."""
    if not raw or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    return (raw or "").strip().lower()


def marker_of(lead) -> str:
    return MARKER_PREFIX + lead.id.hex[:16]


def _timestamp(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


# ---------------------------------------------------------------------------- contacts


def contact_values(contact: dict, code: str) -> list[str]:
    """The raw values of a contact's PHONE or EMAIL field as amoCRM returned them."""
    values = []
    for field in contact.get("custom_fields_values") or []:
        if field.get("field_code") == code:
            values += [str(item.get("value") or "") for item in field.get("values") or []]
    return values


def contact_matches(contact: dict, *, phone: str, email: str) -> bool:
    """True when one of the contact's phones or emails really is the lead's, after normalization.

    amoCRM's `query` search is fuzzy (it finds +7 916 123-45-67 for 8 916 123 45 60 too), so a
    hit is only the same person when a stored value normalizes to exactly the lead's value.
    """
    if phone and any(normalize_phone(value) == phone for value in contact_values(contact, "PHONE")):
        return True
    if email and any(normalize_email(value) == email for value in contact_values(contact, "EMAIL")):
        return True
    return False


def new_contact(lead, contact_fields_by_id: dict[int, "FieldInfo"] | None = None) -> dict:
    """A contact to create with the deal: name, PHONE and EMAIL with enum_code WORK, then the source's
    contact field mapping (validated like deal fields; a value that does not fit stays in the note)."""
    fields = []
    if lead.phone:
        fields.append({"field_code": "PHONE", "values": [{"value": lead.phone, "enum_code": "WORK"}]})
    if lead.email:
        fields.append({"field_code": "EMAIL", "values": [{"value": lead.email, "enum_code": "WORK"}]})
    if contact_fields_by_id:
        mapped = mapped_values(lead, getattr(lead.source, "contact_field_mapping", None), contact_fields_by_id)
        fields += [{"field_id": field_id, "values": values} for field_id, values in mapped.items()]
    contact = {"name": lead.name or lead.phone or lead.email}
    if fields:
        contact["custom_fields_values"] = fields
    return contact


# ---------------------------------------------------------------------------- deals


def deal_name(lead, source) -> str:
    """The source's template filled in (leads/deal_names.py); a broken template falls back to the default one."""
    values = template_values(lead, source)
    try:
        name = (source.deal_name_template or DEFAULT_DEAL_NAME).format_map(values)
    except (ValueError, IndexError, AttributeError, KeyError, TypeError):  # e.g. "{name[0]}"
        name = DEFAULT_DEAL_NAME.format_map(values)
    return name.strip()[:255] or DEFAULT_DEAL_NAME.format_map(values)


def _field_value(info: FieldInfo, raw: str) -> list[dict] | None:
    """amoCRM's value list for one field, or None when the text does not fit the field's type.

    A value that does not fit is left out of the deal (amoCRM would reject the whole request) —
    it still reaches amoCRM in the note.
    """
    text = str(raw).strip()
    if info.type in TEXT_TYPES or not info.type:
        return [{"value": text[:1000]}] if text else None
    if info.type == "numeric":
        try:
            float(text.replace(",", ".").replace(" ", ""))
        except ValueError:
            return None
        return [{"value": text.replace(",", ".").replace(" ", "")}]
    if info.type == "checkbox":
        word = text.lower()
        if word in TRUE_WORDS:
            return [{"value": True}]
        return [{"value": False}] if word in FALSE_WORDS else None
    if info.type in DATE_TYPES:
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return [{"value": _timestamp(moment)}]
        except (ValueError, OverflowError):  # OverflowError: a valid date whose UTC time is past year 9999
            return None
    if info.type in CHOICE_TYPES:
        wanted = [part.strip() for part in text.split(",")] if info.type == "multiselect" else [text]
        if not wanted or any(part not in info.enums for part in wanted):
            return None
        return [{"value": part} for part in wanted]
    return None


def deal_custom_fields(lead, source, fields_by_id: dict[int, FieldInfo],
                       tracking: dict[str, FieldInfo]) -> list[dict]:
    """UTMs, click and client ids into the account's tracking_data fields (codes it lacks skipped), then the
    source's mapping."""
    values: dict[int, list[dict]] = {}
    for attribute, code in TRACKING_CODES.items():
        info = tracking.get(code)
        text = getattr(lead, attribute)
        if info is not None and text:
            values[info.id] = [{"value": text[:255]}]
    values.update(attribution.tracking_values(lead, tracking))
    values.update(mapped_values(lead, source.field_mapping, fields_by_id))
    return [{"field_id": field_id, "values": field_values} for field_id, field_values in values.items()]


def mapped_values(lead, mapping: dict | None, fields_by_id: dict[int, FieldInfo]) -> dict[int, list[dict]]:
    """A source's mapping (form field or lead attribute → custom field id) as amoCRM value lists by field id.

    Fields deleted in amoCRM since the mapping was saved and values that do not fit their type are left out.
    """
    values: dict[int, list[dict]] = {}
    for form_field, field_id in (mapping or {}).items():
        info = fields_by_id.get(to_int(field_id))
        if info is None:
            continue
        if form_field in (lead.fields or {}):
            raw = lead.fields[form_field]
        elif form_field in MAPPABLE_ATTRIBUTES:
            raw = getattr(lead, form_field)
        else:
            continue
        field_values = _field_value(info, raw) if raw not in (None, "") else None
        if field_values:
            values[info.id] = field_values
    return values


def deal_price(lead) -> int | None:
    """The deal's integer budget (amoCRM's `price`), rounded half up; None when the form sent none."""
    if lead.price is None:
        return None
    return int(Decimal(lead.price).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def deal_placement(source, account) -> dict:
    """pipeline_id / status_id / responsible_user_id from the source, else the account's defaults."""
    placement = {}
    pipeline_id = source.pipeline_id or account.default_pipeline_id
    status_id = source.status_id if source.pipeline_id else (source.status_id or account.default_status_id)
    if pipeline_id:
        placement["pipeline_id"] = pipeline_id
    if status_id:
        placement["status_id"] = status_id
    responsible = source.responsible_user_id or account.default_responsible_user_id
    if responsible:
        placement["responsible_user_id"] = responsible
    return placement


def deal_tags(lead, source) -> list[dict]:
    names = [str(tag).strip() for tag in (source.tags or []) if str(tag).strip()]
    return [{"name": name} for name in dict.fromkeys([*names, marker_of(lead)])]


def complex_deal(lead, source, account, *, request_id: str, contact: dict, fields_by_id, tracking) -> dict:
    """One element of POST /api/v4/leads/complex: the deal with its one contact (new, or {"id": N})."""
    deal = {
        "request_id": request_id,
        "name": deal_name(lead, source),
        **deal_placement(source, account),
    }
    if lead.responsible_user_id:  # chosen by the source's routing (leads/push/routing.py)
        deal["responsible_user_id"] = lead.responsible_user_id
    price = deal_price(lead)
    if price is not None:
        deal["price"] = price
    custom_fields = deal_custom_fields(lead, source, fields_by_id, tracking)
    if custom_fields:
        deal["custom_fields_values"] = custom_fields
    deal["_embedded"] = {"tags": deal_tags(lead, source), "contacts": [contact]}
    return deal


def unsorted_form(lead, source, account, *, request_id: str, fields_by_id, tracking) -> dict:
    """One element of POST /api/v4/leads/unsorted/forms: an incoming lead a manager accepts or declines."""
    embedded_deal = {"name": deal_name(lead, source)}
    custom_fields = deal_custom_fields(lead, source, fields_by_id, tracking)
    if custom_fields:
        embedded_deal["custom_fields_values"] = custom_fields
    embedded_deal["_embedded"] = {"tags": deal_tags(lead, source)}
    sent_at = _timestamp(lead.created_at)
    metadata = {
        "form_id": source.form_id or f"source-{source.pk}",
        "form_name": source.name,
        "form_page": lead.page_url or lead.referrer or settings.SITE_URL,
        "form_sent_at": sent_at,
    }
    if lead.ip:
        metadata["ip"] = lead.ip
    if lead.referrer:
        metadata["referer"] = lead.referrer
    form = {
        "request_id": request_id,
        "source_uid": str(lead.id),
        "source_name": source.name,
        "created_at": sent_at,
        "metadata": metadata,
        "_embedded": {"leads": [embedded_deal], "contacts": [new_contact(lead)]},
    }
    pipeline_id = source.pipeline_id or account.default_pipeline_id
    if pipeline_id:
        form["pipeline_id"] = pipeline_id
    return form


# ---------------------------------------------------------------------------- notes


def note_text(lead, source) -> str:
    """The visitor's message and everything else the form sent, so nothing is lost in amoCRM."""
    # The manager reads it in amoCRM: labels in the project's language (the worker's LANGUAGE_CODE).
    details = []
    if lead.page_url:
        details.append(gettext("Page: %(value)s") % {"value": lead.page_url})
    if lead.referrer:
        details.append(gettext("Referrer: %(value)s") % {"value": lead.referrer})
    if lead.company:
        details.append(gettext("Company: %(value)s") % {"value": lead.company})
    if lead.price is not None:
        details.append(gettext("Budget: %(value)s") % {"value": lead.price})
    utms = [f"{name}={getattr(lead, name)}" for name in UTM_FIELDS if getattr(lead, name)]
    if utms:
        details.append("UTM: " + ", ".join(utms))
    details += attribution.note_lines(lead)
    if lead.fields:
        details.append(gettext("Form fields:"))
        details += [f"  {key}: {value}" for key, value in lead.fields.items()]
    parts = [part for part in (lead.message.strip(), "\n".join(details)) if part]
    if not parts:
        return ""
    return "\n\n".join([*parts, gettext("Website lead %(id)s from “%(source)s”.") % {"id": lead.id,
                                                                                   "source": source.name}])


def deal_note(*, deal_id: int, text: str) -> dict:
    return {"entity_id": deal_id, "note_type": "common", "params": {"text": text}}


def attached_note_text(lead, source) -> str:
    """The note a repeat enquiry becomes on the person's open deal: says it is a new enquiry, then the usual."""
    heading = gettext("Repeat enquiry from the website (“%(source)s”), attached to this open deal.") % {
        "source": source.name}
    return "\n\n".join(part for part in (heading, note_text(lead, source)) if part)


# ---------------------------------------------------------------------------- tasks


def task_text(lead, source) -> str:
    """The source's task template filled in with the lead; a broken template falls back to the default one."""
    values = Blank(
        name=lead.name or lead.phone or lead.email, phone=lead.phone, email=lead.email, company=lead.company,
        price="" if lead.price is None else str(lead.price), source=source.name, message=lead.message[:500],
    )
    default = str(DEFAULT_TASK_TEXT)
    try:
        text = (source.task_text or default).format_map(values)
    except (ValueError, IndexError, AttributeError, KeyError, TypeError):
        text = default.format_map(values)
    return " ".join(text.split())[:1000] or default.format_map(values)


def working_hours(text: str) -> tuple[time, time] | None:
    """"09:00-18:00" → (09:00, 18:00); None when empty or not two HH:MM times with the first before the second."""
    match = WORKING_HOURS.match(text or "")
    if not match:
        return None
    try:
        opens, closes = time.fromisoformat(match.group(1).zfill(5)), time.fromisoformat(match.group(2).zfill(5))
    except ValueError:
        return None
    return (opens, closes) if opens < closes else None


def task_deadline(now: datetime, *, minutes: int, hours: str = "") -> datetime:
    """Due `minutes` after `now`; with working hours (Mon–Fri, TIME_ZONE), counted from the next opening
    when `now` is outside them."""
    start = now
    span = working_hours(hours)
    if span is not None:
        opens, closes = span
        local = now.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE))
        if local.weekday() < 5 and opens <= local.time() < closes:
            start = now
        else:
            day = local.date() if local.weekday() < 5 and local.time() < opens else local.date() + timedelta(days=1)
            while day.weekday() >= 5:
                day += timedelta(days=1)
            start = datetime.combine(day, opens, tzinfo=local.tzinfo)
    return start + timedelta(minutes=minutes)


def deal_task(lead, source, *, now: datetime) -> dict:
    """One element of POST /api/v4/tasks: the manager's task on the lead's new deal, due N minutes from `now`."""
    task = {
        "entity_id": lead.amocrm_deal_id,
        "entity_type": "leads",
        "text": task_text(lead, source),
        "complete_till": _timestamp(task_deadline(now, minutes=source.task_due_minutes,
                                                  hours=source.task_working_hours)),
        "task_type_id": source.task_type_id or 1,
    }
    if lead.responsible_user_id:
        task["responsible_user_id"] = lead.responsible_user_id
    return task
