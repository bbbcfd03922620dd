"""Readers of webhook item fields the product does not act on (custom fields, tags, the newest time).

They lived in amocrm/webhooks/parser.py, used only by tests; the parser tests use them to check
that every shape amoCRM sends survives parsing in a readable form.
"""

from typing import Any

from amocrm.values import to_int
from amocrm.webhooks.parser import WebhookItem, item_timestamps


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _children(value: Any) -> list:
    """The elements of a list, or of a dict whose keys were not canonical indices."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return []


def _custom_field_values(raw_values: Any) -> list:
    if isinstance(raw_values, dict) and ("value" in raw_values or "enum" in raw_values):
        return [raw_values]  # one value sent without its index level
    if isinstance(raw_values, dict | list):
        return _children(raw_values)
    return [raw_values]  # values=<scalar>: a bare value without even the index


def item_modified_at(item: WebhookItem) -> int | None:
    """The newest of the item's modification/creation times as unix seconds."""
    return max(item_timestamps(item).values(), default=None)


def item_custom_fields(item: WebhookItem) -> list[dict]:
    """Custom fields as ``[{"id", "name", "code", "values": [{"value", "enum"}]}]``.

    A date field arrives bare (``custom_fields[i][values][0]=<unix ts>``), without ``[value]``:
    it is normalised to the same shape. Fields without a numeric id and values that are neither
    a string nor a ``{value, enum}`` dict are left out.
    """
    fields = []
    for field in _children(item.data.get("custom_fields")):
        if not isinstance(field, dict) or (field_id := to_int(field.get("id"))) is None:
            continue
        values = []
        for raw in _custom_field_values(field.get("values")):
            if isinstance(raw, dict):
                value = _text(raw.get("value"))
                enum = _text(raw.get("enum"))
                if value is None and enum is None:
                    continue
                values.append({"value": value or "", "enum": enum or None})
            elif (value := _text(raw)) is not None:
                values.append({"value": value, "enum": None})
        fields.append({"id": field_id, "name": _text(field.get("name")) or None,
                       "code": _text(field.get("code")) or None, "values": values})
    return fields


def item_tags(item: WebhookItem) -> list[str]:
    """Tag names from ``tags[i][name]``; tags without a name are left out."""
    return [name for tag in _children(item.data.get("tags"))
            if isinstance(tag, dict) and (name := _text(tag.get("name")))]
