"""Attribution on the intake: ad click ids, analytics client ids and the visitor's first touch.

The tracker (leads/static/amocrm/tracker.js) posts them beside the last-touch UTMs: click and client ids as
flat fields, the first touch nested as `first_touch` {utm_source, …, referrer, landing_page, at}. A plain form
post sends `first_touch[utm_source]` (or `first_utm_source`), which `lift_first_touch` nests. They are stored
on the Lead as `gclid`, … and `first_utm_source`, …, `first_touch_at` (`lead_values`).
"""

from datetime import UTC

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# The intake's field → its length cap (the Lead's column). vk_clickid is VK Ads' rb_clickid URL parameter.
CLICK_IDS = ("gclid", "gbraid", "wbraid", "yclid", "fbclid", "msclkid", "vk_clickid")
CLIENT_IDS = ("ym_client_id", "ga_client_id", "roistat_visit")
ID_FIELDS = CLICK_IDS + CLIENT_IDS
ID_MAX_LENGTH = 255
# An id → the codes of amoCRM's tracking_data deal fields ("Statistics" group) that may hold it, preferred
# first: the one the account has is used (docs/amocrm.md#entities). An id whose codes the account lacks goes
# to a mapped custom field or, always, into the note.
ID_TRACKING_CODES = {
    "gclid": ("GCLID",), "gbraid": ("GBRAID",), "wbraid": ("WBRAID",), "yclid": ("YCLID",), "fbclid": ("FBCLID",),
    "msclkid": ("MSCLKID",), "vk_clickid": ("VK_CLICKID", "RB_CLICKID"), "ym_client_id": ("_YM_UID",),
    "ga_client_id": ("GCLIENTID", "_GA"), "roistat_visit": ("ROISTAT",),
}
ID_CODES = frozenset(code for codes in ID_TRACKING_CODES.values() for code in codes)
# first_touch's key → its length cap; `at` (an ISO 8601 time) is parsed apart.
FIRST_TOUCH_TEXT = {"utm_source": 255, "utm_medium": 255, "utm_campaign": 255, "utm_term": 255,
                    "utm_content": 255, "referrer": 2000, "landing_page": 2000}
FIRST_TOUCH_KEYS = (*FIRST_TOUCH_TEXT, "at")
# A first-touch key → the Lead's field.
FIRST_TOUCH_COLUMNS = {"utm_source": "first_utm_source", "utm_medium": "first_utm_medium",
                       "utm_campaign": "first_utm_campaign", "utm_term": "first_utm_term",
                       "utm_content": "first_utm_content", "referrer": "first_referrer",
                       "landing_page": "first_landing_page", "at": "first_touch_at"}
# Any of these in a post means it carries attribution (the intake's one-set-check fast path).
INPUT_KEYS = frozenset((*ID_FIELDS, "first_touch"))
# Form-encoded spellings of the first touch: first_touch[utm_source] and first_utm_source.
_FORM_KEYS = {**{f"first_touch[{key}]": key for key in FIRST_TOUCH_KEYS},
              **{column: key for key, column in FIRST_TOUCH_COLUMNS.items()}}
# What a form builder's body may carry under our own names (the hook passes these through as they are).
HOOK_KEYS = INPUT_KEYS | frozenset(_FORM_KEYS)


def lift_first_touch(data: dict) -> dict:
    """Nest flat first-touch keys (`first_touch[utm_source]`, `first_utm_source`) into `first_touch`.

    The data is returned as it is when it has none (the common case costs one scan of the keys).
    """
    if _FORM_KEYS.keys().isdisjoint(data):
        return data
    found = [key for key in data if key in _FORM_KEYS]
    data = dict(data)
    nested = dict(data["first_touch"]) if isinstance(data.get("first_touch"), dict) else {}
    for key in found:
        nested.setdefault(_FORM_KEYS[key], data.pop(key))
    data["first_touch"] = nested
    return data


@extend_schema_field({
    "type": "object",
    "description": "The visitor's first touch as the tracker kept it (the flat utm_* fields are the last touch). "
                   "Form posts: first_touch[utm_source] or first_utm_source.",
    "properties": {**{key: {"type": "string", "maxLength": size} for key, size in FIRST_TOUCH_TEXT.items()},
                   "at": {"type": "string", "format": "date-time"}},
    "additionalProperties": False,
})
class FirstTouch(serializers.Field):
    """`first_touch`: an object of trimmed, length-capped texts and an ISO 8601 `at`; absent or null → {}.

    Unknown keys are refused, so a misspelt key is an error the site's developer sees, not a silent loss.
    """

    default_error_messages = {
        "invalid": _("Expected an object with utm_source, utm_medium, utm_campaign, utm_term, utm_content, "
                     "referrer, landing_page and at."),
        "unknown": _("Unknown key(s): {keys}. Allowed: utm_source, utm_medium, utm_campaign, utm_term, "
                     "utm_content, referrer, landing_page, at."),
        "text": _("{name}: expected a string of at most {max_length} characters."),
        "at": _("at: expected an ISO 8601 date and time, e.g. 2026-05-01T10:00:00Z."),
        "unstorable": _("{name}: null or surrogate characters are not allowed."),
    }

    def __init__(self, unstorable):
        super().__init__(required=False, allow_null=True, default=dict)
        self.unstorable = unstorable

    def to_internal_value(self, data) -> dict:
        if not isinstance(data, dict):
            self.fail("invalid")
        unknown = sorted(str(key) for key in data if key not in FIRST_TOUCH_COLUMNS)
        if unknown:
            self.fail("unknown", keys=", ".join(unknown)[:200])
        out = {}
        for key, size in FIRST_TOUCH_TEXT.items():
            value = data.get(key)
            if value is None or value == "":
                continue
            if not isinstance(value, str) or len(value.strip()) > size:
                self.fail("text", name=key, max_length=size)
            if self.unstorable.search(value):
                self.fail("unstorable", name=key)
            out[key] = value.strip()
        at = data.get("at")
        if at not in (None, ""):
            try:
                moment = parse_datetime(at.strip()) if isinstance(at, str) else None
            except ValueError:  # well formed but no such time, e.g. month 13
                moment = None
            if moment is None:
                self.fail("at")
            out["at"] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return out

    def to_representation(self, value):
        return value


def lead_values(data: dict) -> dict:
    """The Lead's attribution fields from validated intake data."""
    values = {name: data.get(name, "") for name in ID_FIELDS}
    touch = data.get("first_touch") or {}
    for key, column in FIRST_TOUCH_COLUMNS.items():
        values[column] = touch.get(key, None if key == "at" else "")
    return values


def tracking_values(lead, tracking: dict) -> dict[int, list[dict]]:
    """Field id → amoCRM values for the lead's click and client ids whose tracking field the account has.

    `tracking` is the account's cached tracking fields by code (leads/push/engine.py).
    """
    values = {}
    for name, codes in ID_TRACKING_CODES.items():
        text = getattr(lead, name)
        info = next((tracking[code] for code in codes if code in tracking), None)
        if info is not None and text:
            values[info.id] = [{"value": text[:255]}]
    return values


def note_lines(lead) -> list[str]:
    """The first touch and every click or client id, for the deal's note (whatever has a field too:
    the note is where a manager reads the whole story)."""
    lines = []
    touch = [f"{key}={getattr(lead, column)}" for key, column in FIRST_TOUCH_COLUMNS.items()
             if key not in ("referrer", "landing_page", "at") and getattr(lead, column)]
    if touch or lead.first_referrer or lead.first_landing_page or lead.first_touch_at:
        when = f" ({lead.first_touch_at:%Y-%m-%d %H:%M} UTC)" if lead.first_touch_at else ""
        lines.append(gettext("First touch%(when)s: %(marks)s") % {
            "when": when, "marks": ", ".join(touch) or gettext("direct")})
        if lead.first_landing_page:
            lines.append("  " + gettext("Landing page: %(value)s") % {"value": lead.first_landing_page})
        if lead.first_referrer:
            lines.append("  " + gettext("Referrer: %(value)s") % {"value": lead.first_referrer})
    ids = [f"{name}={getattr(lead, name)}" for name in ID_FIELDS if getattr(lead, name)]
    if ids:
        lines.append(gettext("Click and analytics ids: %(ids)s") % {"ids": ", ".join(ids)})
    return lines
