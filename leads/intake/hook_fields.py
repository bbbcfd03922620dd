"""Form-builder bodies → the intake's input: field-name presets (Tilda, WordPress plugins), a source's aliases, cookies.

`intake_input` is the whole adapter: it renames what it recognizes to the names /api/leads/ takes
(the intake serializer's own field names, whatever other fields it has gained), reads UTM marks from
Tilda's COOKIES string, and puts everything else under `fields`. Validation is the intake's.
"""

import functools
import json
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from ..models import HookPreset

# The sender's transaction id, our idempotency key: Tilda's `tranid`; the others send an Idempotency-Key header.
IDEMPOTENCY_FIELDS = ("tranid",)
# Never stored: the probe, the raw cookie string (its UTMs and client ids are read out of it).
COOKIES_FIELD = "cookies"
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# Cookies whose value becomes a field, when the intake has that field: the analytics client ids.
CLIENT_ID_COOKIES = {"_ym_uid": "ym_client_id", "_ga": "ga_client_id"}
GA_PREFIX = re.compile(r"^GA\d+\.\d+\.")
# Elementor's "advanced data" format: fields[<id>][value], meta[<name>][value]; its id/type/title keys are noise.
ELEMENTOR_VALUE = re.compile(r"^(fields|meta)\[([^\]]+)\]\[(value|raw_value|title|id|type|required)\]$")
# The intake's own names for extra fields in a form post: fields[city] or fields.city.
OUR_EXTRA_FIELD = re.compile(r"^fields(?:\[([^\]]+)\]|\.(.+))$")
ELEMENTOR_META = {"page_url": "page_url", "referrer": "referrer", "user_agent": None, "remote_ip": None,
                  "date": None, "time": None, "credit": None}

# What every form builder calls our fields (compared by `key_of`: case-insensitive, punctuation as underscores).
COMMON = {
    "name": "name", "имя": "name", "fio": "name", "фио": "name", "full_name": "name", "your_name": "name",
    "first_name": "name", "firstname": "name", "contact_name": "name", "ваше_имя": "name",
    "phone": "phone", "телефон": "phone", "tel": "phone", "phone_number": "phone", "mobile": "phone",
    "your_phone": "phone", "ваш_телефон": "phone", "номер_телефона": "phone",
    "email": "email", "e_mail": "email", "mail": "email", "почта": "email", "your_email": "email",
    "электронная_почта": "email",
    "message": "message", "comment": "message", "comments": "message", "сообщение": "message",
    "комментарий": "message", "your_message": "message", "textarea": "message", "question": "message",
    "вопрос": "message", "comment_or_message": "message",
    "page_url": "page_url", "page": "page_url", "url": "page_url", "referrer": "referrer", "referer": "referrer",
    # Used once the intake takes them (a deal's budget, the contact's company).
    "price": "price", "цена": "price", "сумма": "price", "стоимость": "price", "amount": "price", "budget": "price",
    "бюджет": "price", "total": "price",
    "company": "company", "компания": "company", "организация": "company", "company_name": "company",
    "название_компании": "company", "your_company": "company",
}
PRESETS = {
    HookPreset.TILDA: {"textarea": "message", "comments": "message"},
    # CF7 field names are the form's tags: [text* your-name] [email* your-email] [tel your-phone] …
    HookPreset.CF7: {"your_name": "name", "your_email": "email", "your_phone": "phone", "your_tel": "phone",
                     "your_message": "message", "tel_phone": "phone", "text_name": "name"},
    # Elementor's simple format sends the labels: Name, Email, Message, "Page URL"; ids in advanced data.
    HookPreset.ELEMENTOR: {"page_url": "page_url", "form_field_name": "name", "form_field_email": "email",
                           "form_field_phone": "phone", "form_field_message": "message"},
    # WPForms' webhook add-on lets the user name the keys; these are the add-on's suggestions.
    HookPreset.WPFORMS: {"name_first": "name", "comment_or_message": "message", "single_line_text": "name"},
}
# Contact Form 7 names the fields it generates by type and a number: tel-123, email-45, textarea-6.
NUMBERED = re.compile(r"^(tel|email|textarea)_\d+$")
NUMBERED_TARGET = {"tel": "phone", "email": "email", "textarea": "message"}
# Sent by the builders about themselves, not by the visitor: not worth a line among the extra fields.
NOISE = {"powered_by", "user_agent", "remote_ip", "date", "time", "formservices"}


def key_of(name: str) -> str:
    """How field names are compared: case-insensitive, any run of spaces or punctuation as one underscore
    ("Name (First)" → name_first, "E-mail" → e_mail)."""
    return re.sub(r"[\W_]+", "_", str(name)).strip("_").casefold()


@dataclass(frozen=True)
class NameTable:
    """How one source's hook renames fields. `own`: the source's aliases, which may also rename a field
    among the extra fields ("Ваш город" → city). `builtin`: the common and preset names, used only
    where the intake has the field (a preset's `price` waits until the intake takes a price).
    `numbered`: CF7's tel-123 / email-4 / textarea-5."""

    own: dict[str, str]
    builtin: dict[str, str]
    numbered: bool

    def target(self, key: str, known: frozenset[str] | set[str]) -> str | None:
        """Our name for the sender's (compared with `key_of`), or None: keep it under its own name."""
        if key in self.own:
            return self.own[key]
        if self.builtin.get(key) in known:
            return self.builtin[key]
        if key in known:
            return key
        numbered = NUMBERED.match(key) if self.numbered else None
        return NUMBERED_TARGET[numbered.group(1)] if numbered else None


def aliases_for(preset: str, aliases: dict) -> NameTable:
    """The name table a source's hook uses: its own aliases first, then its preset's names (every preset's
    for "auto") and the common ones. Built once per preset and set of aliases (few, and rarely changed)."""
    return _table(preset, json.dumps(aliases or {}, sort_keys=True, ensure_ascii=False))


@functools.lru_cache(maxsize=256)
def _table(preset: str, aliases_json: str) -> NameTable:
    builtin: dict[str, str] = {}
    if preset != HookPreset.NONE:
        builtin.update(COMMON)
        for name, names in PRESETS.items():
            if preset in (HookPreset.AUTO, name):
                builtin.update(names)
    own = {key_of(theirs): str(ours).strip() for theirs, ours in json.loads(aliases_json).items()}
    return NameTable(own=own, builtin=builtin, numbered=preset in (HookPreset.AUTO, HookPreset.CF7))


def flatten(data) -> dict | None:
    """A parsed body as one dict of name → value (form-encoded: repeated names joined with ", "). None: not a dict."""
    if hasattr(data, "getlist"):
        return {key: ", ".join(str(v) for v in data.getlist(key)) for key in data}
    return dict(data) if isinstance(data, dict) else None


def is_probe(body: dict) -> bool:
    """Tilda checks a webhook URL with `test=test` before saving it."""
    return str(body.get("test", "")).strip().lower() == "test" and len(body) <= 2


def idempotency_key_of(body: dict) -> str:
    """The sender's own id for this submission (Tilda's tranid), or ""."""
    for name in IDEMPOTENCY_FIELDS:
        value = body.get(name)
        if isinstance(value, str | int) and str(value).strip():
            return f"{name}:{str(value).strip()}"
    return ""


def intake_input(body: dict, *, known: frozenset[str] | set[str], table: NameTable) -> dict:
    """The /api/leads/ input for a form builder's body: our names where recognized, the rest under `fields`.

    `known` is the intake serializer's field names; a name it recognizes keeps its value, the first
    non-empty one winning when several of the sender's names map to it. Everything else is kept as text.
    """
    values: dict = {}
    extra: dict[str, str] = {}
    cookies = ""
    for name, value in body.items():
        key = key_of(name)
        if key in IDEMPOTENCY_FIELDS or key == "test" or key in NOISE or key.startswith("wpcf7"):
            continue
        if key == COOKIES_FIELD:
            cookies = value if isinstance(value, str) else ""
            continue
        elementor = ELEMENTOR_VALUE.match(str(name))
        if elementor:
            _elementor_field(elementor, value, values, extra, known, table)
            continue
        ours = _our_extra_fields(name, value)
        if ours is not None:  # our own format: kept as sent, under `fields`
            for extra_name, extra_value in ours:
                if extra_value not in (None, ""):
                    extra.setdefault(str(extra_name), _text(extra_value))
            continue
        if key == "payment" and "price" in known:
            _tilda_payment(value, values, extra)
            continue
        _put(table.target(key, known), name, value, values, extra, known)
    for target, value in _from_cookies(cookies, known).items():
        values.setdefault(target, value)
    if extra:
        values["fields"] = extra
    return values


def _our_extra_fields(name: str, value) -> list[tuple] | None:
    """The extra fields of a body in the intake's own format (`fields` as an object, or fields[city] /
    fields.city in a form post), as (name, value) pairs; None: `name` is not one of those."""
    if key_of(name) == "fields" and isinstance(value, dict):
        return list(value.items())
    ours = OUR_EXTRA_FIELD.match(str(name))
    return [(ours.group(1) or ours.group(2), value)] if ours else None


def _put(target: str | None, name: str, value, values: dict, extra: dict, known: set[str]) -> None:
    if target in ("source", "fields"):
        target = None  # the source is the URL's; `fields` is built here
    if target is None or target not in known:
        if value not in (None, ""):
            extra[target or str(name).strip()] = _text(value)
        return
    if values.get(target) in (None, "") and value not in (None, ""):
        values[target] = value if isinstance(value, str | int | float) else _text(value)
    else:
        values.setdefault(target, value)


def _elementor_field(match: re.Match, value, values: dict, extra: dict, known, table: NameTable) -> None:
    kind, name, part = match.groups()
    if part != "value":
        return
    if kind == "meta":
        target = ELEMENTOR_META.get(key_of(name))
        if target:
            _put(target, name, value, values, extra, known)
        return
    _put(table.target(key_of(name), known), name, value, values, extra, known)


def _tilda_payment(value, values: dict, extra: dict) -> None:
    """Tilda's order forms send `payment`, a JSON object whose `amount` is the order's total: the deal's price."""
    payment = value
    if isinstance(value, str):
        try:
            payment = json.loads(value)
        except ValueError:
            payment = None
    if isinstance(payment, dict) and payment.get("amount") not in (None, ""):
        values.setdefault("price", str(payment["amount"]))
    extra["payment"] = _text(value)


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value)
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)


def parse_cookies(raw: str) -> dict[str, str]:
    """A Cookie header's "a=1; b=2" as a dict (Tilda forwards the visitor's cookies that way)."""
    cookies = {}
    for part in raw.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            cookies[name.strip()] = value.strip()
    return cookies


def _from_cookies(raw: str, known: set[str]) -> dict[str, str]:
    """UTM marks (plain utm_* cookies or Tilda's TILDAUTM "utm_source=x|||utm_medium=y") and client ids."""
    if not raw:
        return {}
    cookies = parse_cookies(raw)
    found = {name: unquote_plus(cookies[name]) for name in UTM if cookies.get(name)}
    for pair in unquote_plus(cookies.get("TILDAUTM", "")).split("|||"):
        name, sep, value = pair.partition("=")
        if sep and name.strip() in UTM and value.strip():
            found.setdefault(name.strip(), value.strip())
    for cookie, target in CLIENT_ID_COOKIES.items():
        if target in known and cookies.get(cookie):
            found[target] = GA_PREFIX.sub("", unquote_plus(cookies[cookie]))
    return found
