"""Reading amoCRM's values: ids and times that arrive as strings, `_embedded` lists, a deal's main contact.

amoCRM sends every webhook value as a string and the API mixes numbers and numeric strings
(docs/amocrm.md#entities), so every reader goes through these instead of calling int() itself.
"""

from datetime import UTC, datetime
from typing import Any

# amoCRM ids and unix times fit in 18 digits; int() of thousands of digits is slow, so longer is refused.
_MAX_DIGITS = 18


def to_int(value: Any) -> int | None:
    """An int from an int or a numeric string ("42", " 42 "); None for anything else (bools, floats, "", junk).

    Longer than 18 digits is None too, whether a string or a JSON number: no amoCRM id or time is that long.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 10**_MAX_DIGITS else None
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_DIGITS:
            return int(text)
    return None


def to_id(value: Any) -> int | None:
    """An amoCRM id: a positive int, else None (a 0 or negative id names nothing and must never reach a URL)."""
    number = to_int(value)
    return number if number is not None and number > 0 else None


def to_moment(value: Any) -> datetime | None:
    """amoCRM's unix seconds as an aware datetime; None when missing, 0 (an unset date) or out of range."""
    seconds = to_int(value)
    if seconds is None or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def embedded(data: Any, key: str) -> list[dict]:
    """The dicts listed under `data["_embedded"][key]`; [] when any level is missing or not what it should be."""
    if not isinstance(data, dict):
        return []
    holder = data.get("_embedded")
    items = holder.get(key) if isinstance(holder, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def main_contact_id(deal: Any) -> int | None:
    """The id of the deal's main contact (`is_main`), else of its first contact; None without contacts."""
    contacts = embedded(deal, "contacts")
    main = next((contact for contact in contacts if contact.get("is_main")), contacts[0] if contacts else None)
    return to_id(main.get("id")) if main else None
