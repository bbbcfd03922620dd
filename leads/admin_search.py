"""The lead list's search: what the operator typed, read by its shape, as lookups that indexes answer.

Django's default search runs `UPPER(column) LIKE '%term%'` over every search field: sequential scans of the
whole table. What operators type is a phone number (in any format, or its last digits), an e-mail (or its
start), an amoCRM deal id or the start of a name, so the search is one of these:

- digits with phone punctuation (`8 (912) 345-67-89`, `+7 912 345 67 89`, `4567`): phones ending in those
  digits (the last 10 when more are typed: `8…` and `+7…` both find `+7…`), on the index of `reverse(phone)`;
  a number that fits is also an amoCRM deal id, on the (account, deal id) index;
- anything with `@`: e-mails starting with it (e-mails are stored lower-case), on the index of `email`;
- other text: names starting with it (any case, on the index of `upper(name)`) and e-mails starting with it.

The indexes come from migration 0009_perf_search_indexes (PostgreSQL only; elsewhere the same lookups run unindexed).
"""

import re

from django.db.models import Q, QuerySet
from django.db.models.functions import Reverse, Upper

from amocrm.models import Account

PHONE_SHAPE = re.compile(r"^[\d\s()+\-.]+$")
MIN_PHONE_DIGITS = 4
PHONE_TAIL_DIGITS = 10  # a national number (Russia: +7 and 10 digits); more typed digits are a prefix
MAX_BIGINT = 2**63 - 1


def lead_search_q(term: str) -> tuple[Q | None, dict]:
    """The condition for `term` and the aliases it needs (None: the term matches nothing)."""
    term = term.strip()
    if PHONE_SHAPE.match(term) and any(ch.isdigit() for ch in term):
        return _digits_q(re.sub(r"\D", "", term))
    if "@" in term:
        return Q(email__startswith=term.lower()), {}
    return Q(name_upper__startswith=term.upper()) | Q(email__startswith=term.lower()), {"name_upper": Upper("name")}


def _digits_q(digits: str) -> tuple[Q | None, dict]:
    condition, aliases = None, {}
    if len(digits) >= MIN_PHONE_DIGITS:
        tail = digits[-PHONE_TAIL_DIGITS:]
        condition, aliases = Q(phone_reversed__startswith=tail[::-1]), {"phone_reversed": Reverse("phone")}
    if int(digits) <= MAX_BIGINT:
        # account_id first: the lookup then walks the (account, deal id) index once per account.
        deal = Q(amocrm_deal_id=int(digits), account_id__in=list(Account.objects.values_list("pk", flat=True)))
        condition = deal if condition is None else condition | deal
    return condition, aliases


def lead_search(queryset: QuerySet, term: str) -> QuerySet:
    """`queryset` narrowed to the leads `term` finds (see the module's docstring)."""
    if not term.strip():
        return queryset
    condition, aliases = lead_search_q(term)
    if condition is None:
        return queryset.none()
    return queryset.alias(**aliases).filter(condition)
