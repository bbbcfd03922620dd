"""Parses raw amoCRM webhook bodies (PHP-style form encoding or JSON) into nested data and webhook items.

amoCRM posts webhooks in the old v2 shape, form-encoded with PHP bracket keys such as
``leads[status][0][custom_fields][1][values][0][enum]=3001``, every value a string
(docs/amocrm.md#webhooks-amocrm-sends; https://www.amocrm.ru/developers/content/crm_platform/webhooks-format),
read through amocrm.values like every amoCRM value. Bodies arrive truncated,
with dangling key fragments or with broken UTF-8, and a delivery we cannot read at all is still
stored by the caller, so this module never raises anything but ``WebhookParseError``.

Choices where PHP's own parser is not a useful model:

* A piece without ``=`` (``leads[status][0][na``) can only be a fragment of a cut body: it is
  skipped, as is a piece whose key has an empty name (``=x``) or unbalanced brackets
  (``leads[status``). Everything else in the body is kept.
* Repeated keys: the last value wins, and a later nested key replaces an earlier scalar
  (``a=1&a[b]=2`` gives ``{"a": {"b": "2"}}``), both as in PHP. Unlike PHP, a later scalar never
  replaces a container: one stray ``leads=`` must not erase every item parsed before it.
* A dict whose keys are all non-negative integers becomes a list ordered by index; sparse
  indices keep their order without ``None`` holes.
"""

import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from ..values import to_id, to_int

logger = logging.getLogger(__name__)

# A real 250-deal delivery with a dozen custom fields per deal runs to about 15,000 pairs; the
# limits leave a margin while bounding the work a hostile body can cause.
MAX_PAIRS = 50_000
# The deepest real key is leads[status][0][custom_fields][1][values][0][enum]: 7 bracket levels.
MAX_DEPTH = 10

_KEY_RE = re.compile(r"([^\[]+)((?:\[[^\[\]]*\])*)")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")
# Canonical non-negative integers only: PHP keeps "01" as a string key, and so do we. Bounded to
# 18 digits, as amoCRM ids are, because int() refuses strings of thousands of digits.
_INDEX_RE = re.compile(r"0|[1-9][0-9]{0,17}")

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"


class WebhookParseError(ValueError):
    """The body yields nothing usable, or exceeds the nesting/size limits."""


# --- Raw body -> nested dict -------------------------------------------------------------------


def parse_body(body: bytes, content_type: str | None) -> dict:
    """Return the delivery as nested dicts and lists of strings, or raise WebhookParseError.

    JSON is used when the content type says so; form encoding when it says so, and when the content
    type is missing or unknown the body decides (a JSON object, else ``k=v&...``).
    """
    # Whitespace at either end is never meaningful (a space inside a value arrives as "+" or %20),
    # but a stray newline would otherwise end up in the last value.
    body = body.strip()
    if not body:
        raise WebhookParseError("The body is empty.")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == JSON_CONTENT_TYPE or media_type.endswith("+json"):
        return _parse_json(body)
    if media_type == FORM_CONTENT_TYPE:
        return _parse_form(body)
    if body[:1] == b"{":
        return _parse_json(body)
    if b"=" in body:
        return _parse_form(body)
    raise WebhookParseError(f"Neither JSON nor form encoding (content type {content_type!r}).")


def _finite_float(text: str) -> float | str:
    """A JSON number as a float, or its text when it does not fit one (`1e999` would be infinity)."""
    value = float(text)
    return value if math.isfinite(value) else text


def _parse_json(body: bytes) -> dict:
    try:
        # Only finite numbers: infinity and NaN (`1e999`, the non-standard `NaN` literal) are kept as
        # the text that was sent, since nothing downstream (jsonb included) can hold them.
        parsed = json.loads(body, parse_float=_finite_float, parse_constant=str)
    except RecursionError as exc:
        raise WebhookParseError(f"Nested deeper than {MAX_DEPTH} levels.") from exc
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise WebhookParseError(f"Invalid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise WebhookParseError(f"The JSON body is a {type(parsed).__name__}, not an object.")
    if not parsed:
        raise WebhookParseError("The JSON body is an empty object.")
    _check_json_limits(parsed)
    return parsed


def _check_json_limits(parsed: dict) -> None:
    """Apply the form limits to JSON, so both encodings hand the same bounded shapes onwards."""
    values = 0
    stack: list[tuple[Any, int]] = [(parsed, 0)]
    while stack:
        node, depth = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node
        values += len(children)
        if values > MAX_PAIRS:
            raise WebhookParseError(f"More than {MAX_PAIRS} values.")
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    raise WebhookParseError(f"Nested deeper than {MAX_DEPTH} levels.")
                stack.append((child, depth + 1))


def _decode(raw: bytes) -> str:
    # "+" is a space in form encoding; %2B (a literal plus) is decoded only after this replacement.
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", errors="replace")


def _parse_form(body: bytes) -> dict:
    pieces = [piece for piece in body.split(b"&") if piece]
    if len(pieces) > MAX_PAIRS:
        raise WebhookParseError(f"More than {MAX_PAIRS} key/value pairs.")
    root: dict = {}
    # Next index for `key[]=` appends, per container; ids are stable because every container
    # stays referenced from root until the end of the parse.
    next_index: dict[int, int] = {}
    skipped = 0
    for piece in pieces:
        raw_key, equals, raw_value = piece.partition(b"=")
        match = _KEY_RE.fullmatch(_decode(raw_key)) if equals else None
        if match is None:
            skipped += 1
            continue
        path = [match.group(1), *_SEGMENT_RE.findall(match.group(2))]
        if len(path) - 1 > MAX_DEPTH:
            raise WebhookParseError(f"A key is nested deeper than {MAX_DEPTH} levels.")
        _assign(root, path, _decode(raw_value), next_index)
    if skipped:
        logger.info("Skipped %d unparseable piece(s) of a webhook body.", skipped)
    if not root:
        raise WebhookParseError("No key/value pair could be parsed.")
    # The top level stays a dict even when every key is a number (`0=x`): a delivery is keyed by entity.
    return {key: _lists_from_indexed_dicts(child) for key, child in root.items()}


def _assign(root: dict, path: list[str], value: str, next_index: dict[int, int]) -> None:
    node = root
    last = len(path) - 1
    for position, segment in enumerate(path):
        if segment == "" and position > 0:
            key = str(next_index.get(id(node), 0))
        else:
            key = segment
        if _INDEX_RE.fullmatch(key):
            next_index[id(node)] = max(next_index.get(id(node), 0), int(key) + 1)
        if position == last:
            if not isinstance(node.get(key), dict):
                node[key] = value
            return
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child


def _lists_from_indexed_dicts(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists_from_indexed_dicts(child) for key, child in node.items()}
    if converted and all(_INDEX_RE.fullmatch(key) for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


# --- Nested dict -> delivery and items --------------------------------------------------------


@dataclass(frozen=True)
class WebhookItem:
    """One event of a delivery: an entity (``leads``...) touched by an action (``status``...).

    `index` is the item's position under its action, so ``leads[status][3]`` names it to an operator.
    """

    entity: str
    action: str
    data: dict
    entity_id: int | None
    index: int = 0

    @property
    def label(self) -> str:
        return f"{self.entity}[{self.action}][{self.index}]"


@dataclass(frozen=True)
class WebhookDelivery:
    account_id: int | None
    subdomain: str | None
    items: list[WebhookItem]


def extract_delivery(parsed: dict) -> WebhookDelivery:
    """Walk ``<entity>[<action>][<index>]{fields}`` into items; unknown entities and actions are kept."""
    items = []
    for entity, actions in parsed.items():
        if entity == "account" or not isinstance(actions, dict):
            continue
        for action, entries in actions.items():
            for index, data in enumerate(_entries(entries)):
                # Companies arrive under "contacts", told apart only by their type field.
                if entity == "contacts" and (_to_str(data.get("type")) or "").strip().lower() == "company":
                    item_entity = "companies"
                else:
                    item_entity = entity
                # amoCRM ids are positive: anything else names no entity (and must never reach an API path).
                entity_id = to_id(_to_int(data.get("id")))
                items.append(WebhookItem(item_entity, str(action), data, entity_id, index))

    account = parsed.get("account")
    account = account if isinstance(account, dict) else {}
    account_id = _to_int(account.get("id"))
    if account_id is None:
        # Old senders send only account[subdomain]; full bodies still carry each lead's account_id.
        candidates = [parsed.get("account_id"), *(item.data.get("account_id") for item in items)]
        account_id = next((value for value in map(_to_int, candidates) if value is not None), None)
    subdomain = account.get("subdomain")
    subdomain = subdomain.strip() if isinstance(subdomain, str) and subdomain.strip() else None
    return WebhookDelivery(account_id=account_id, subdomain=subdomain, items=items)


def _entries(entries: Any) -> list[dict]:
    """The item dicts under one action: a list from form encoding, maybe an index-keyed dict from JSON."""
    if isinstance(entries, list):
        candidates = entries
    elif isinstance(entries, dict):
        if entries and not all(_INDEX_RE.fullmatch(str(key)) for key in entries) and "id" in entries:
            candidates = [entries]  # a single item sent without its index level
        else:
            candidates = list(entries.values())
    else:
        candidates = []
    return [entry for entry in candidates if isinstance(entry, dict)]


# --- Field accessors ---------------------------------------------------------------------------


def _to_int(value: Any) -> int | None:
    """amocrm.values.to_int, plus the integral floats a JSON sender may write (``7.0``)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return to_int(value)


def _to_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _to_timestamp(value: Any) -> int | None:
    """Unix seconds from amoCRM's numeric strings; ISO 8601 accepted for JSON senders."""
    timestamp = _to_int(value)
    if timestamp is None and isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        timestamp = int(moment.timestamp())
    # 0 is what an unset date looks like, not 1970.
    return timestamp if timestamp is not None and timestamp > 0 else None


def item_int(item: WebhookItem, field: str) -> int | None:
    """The field as an int; None when missing, empty or not an integer."""
    return _to_int(item.data.get(field))


MODIFIED_FIELDS = ("last_modified", "updated_at", "date_create", "created_at")


def item_timestamps(item: WebhookItem) -> dict[str, int]:
    """The item's modification/creation times that are set, as unix seconds, by field name."""
    stamps = {field: _to_timestamp(item.data.get(field)) for field in MODIFIED_FIELDS}
    return {field: stamp for field, stamp in stamps.items() if stamp is not None}
