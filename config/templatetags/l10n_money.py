"""`{% load l10n_money %}`: `{{ amount|money:currency }}` and `{{ count|number }}` in the page's language."""

from django import template

from config import formats

register = template.Library()


@register.filter
def money(amount, currency=None):
    """`{{ sale.amount|money:sale.currency }}` → 45 000,00 ₽ (Russian) or RUB45,000.00 (English)."""
    return formats.money(amount, currency)


@register.filter
def number(value):
    """`{{ count|number }}` → 1 000 000 (Russian) or 1,000,000 (English)."""
    return formats.number(value)
