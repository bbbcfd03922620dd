"""Money and numbers as the reader's locale writes them: `45 000,00 ₽` in Russian, `RUB45,000.00` in English.

Django formats numbers per locale too, but not currencies (symbol, its place, the non-breaking space); Babel
carries the CLDR rules for both. The locale is the active translation's language, so a page follows the
language the operator picked.
"""

from decimal import Decimal

from babel.numbers import format_currency, format_decimal
from django.conf import settings
from django.utils import translation

DEFAULT_CURRENCY = "RUB"


def _locale() -> str:
    return (translation.get_language() or settings.LANGUAGE_CODE).replace("-", "_")


def money(amount: Decimal | int | float | None, currency: str | None = None) -> str:
    """The amount with its currency in the active language's format (an unknown currency code is shown as given)."""
    if amount is None:
        return "—"
    return format_currency(amount, (currency or DEFAULT_CURRENCY).upper(), locale=_locale())


def number(value: Decimal | int | float | None) -> str:
    """A number with the active language's digit grouping and decimal sign."""
    if value is None:
        return "—"
    return format_decimal(value, locale=_locale())
