"""The intake's `price` field: the deal budget as a number or as text with spaces and a decimal comma."""

import re
from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field(OpenApiTypes.STR)
class Price(serializers.Field):
    """The deal budget: a number ≥ 0 as a number or text; spaces and a decimal comma accepted ("45 000,50").

    Absent, null or blank → None (no budget). Kept to two decimals; amoCRM's deal takes it as an integer.
    """

    default_error_messages = {
        "invalid": _("Enter the budget as a number, e.g. 45000 or 45 000,50."),
        "negative": _("The budget cannot be negative."),
        "too_large": _("The budget is too large."),
    }
    SPACES = re.compile(r"[\s\u00a0\u202f\u2009']")

    def __init__(self):
        super().__init__(required=False, allow_null=True, default=None)

    def to_internal_value(self, data) -> Decimal | None:
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            self.fail("invalid")
        text = self.SPACES.sub("", str(data)).replace(",", ".")
        if not text:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            self.fail("invalid")
        if not value.is_finite():
            self.fail("invalid")
        if value < 0:
            self.fail("negative")
        if value >= Decimal(10) ** 12:
            self.fail("too_large")
        return value.quantize(Decimal("0.01"))

    def to_representation(self, value):
        return None if value is None else str(value)
