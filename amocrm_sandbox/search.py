"""amoCRM-like full-text search (fuzzy on digits) and the phone/email normalization duplicates are found by."""

import re
from collections.abc import Iterable

# Fewer digits than this in a query are matched as text only: "1" would otherwise hit half the book.
MIN_QUERY_DIGITS = 3
# A stored value needs this many digits to be matched by digits at all (phones, not house numbers).
MIN_VALUE_DIGITS = 5
# Russian numbers are written +7…, 8… and without a prefix: the last ten digits identify the line.
NATIONAL_DIGITS = 10

_NON_DIGITS = re.compile(r"\D")


def digits_of(text: str) -> str:
    return _NON_DIGITS.sub("", text)


def normalized_phone(text: str) -> str:
    digits = digits_of(text)
    return digits[-NATIONAL_DIGITS:] if len(digits) >= NATIONAL_DIGITS else digits


def normalized_email(text: str) -> str:
    return text.strip().lower()


def matches(query: str, texts: Iterable[str]) -> bool:
    """True when any text contains the query, or shares its digits the loose way amoCRM's search does.

    Deliberately over-matches like the real search: "+7 916" finds every +7 916 number, and a stored
    "9161234567" is found by "+7 (916) 123-45-67" and by "8 916 123 45 67". Callers must verify hits.
    """
    needle = query.strip().lower()
    if not needle:
        return True
    query_digits = digits_of(needle)
    for text in texts:
        text = str(text)
        if needle in text.lower():
            return True
        if len(query_digits) >= MIN_QUERY_DIGITS and _digits_overlap(query_digits, digits_of(text)):
            return True
    return False


def _digits_overlap(query_digits: str, value_digits: str) -> bool:
    if len(value_digits) < MIN_VALUE_DIGITS:
        return False
    if query_digits in value_digits or value_digits in query_digits:
        return True
    both_full = len(query_digits) >= NATIONAL_DIGITS and len(value_digits) >= NATIONAL_DIGITS
    return both_full and query_digits[-NATIONAL_DIGITS:] == value_digits[-NATIONAL_DIGITS:]
