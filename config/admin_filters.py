"""List filters for big tables: choices from the newest rows (and a fixed list), never a DISTINCT over the table.

Django's `AllValuesFieldListFilter` and a `SimpleListFilter` built on `.distinct()` read every row of the
table (or of a join) on every page view. These filters offer the values found among the newest RECENT_ROWS
rows, plus any values given up front (the operations the code performs, say) and the value chosen now: the
values an operator looks for are the ones that arrive, and a value can still be typed into the URL.
"""

from django.contrib import admin
from django.db.models import Model

RECENT_ROWS = 10_000
MAX_CHOICES = 200


class RecentValuesFilter(admin.SimpleListFilter):
    """Filter on `field_path` (may follow a relation) with choices from the newest rows by `newest_first`."""

    field_path = ""
    newest_first = "-pk"
    recent_rows = RECENT_ROWS
    known_values: tuple[str, ...] = ()

    def lookups(self, request, model_admin):
        recent = recent_values(model_admin.model, self.field_path, self.newest_first, self.recent_rows)
        values = set(recent) | set(self.known_values)
        if self.value():
            values.add(self.value())
        return [(value, value) for value in sorted(values)[:MAX_CHOICES]]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field_path: self.value()}) if self.value() else queryset


def recent_values(model: type[Model], field_path: str, newest_first: str, rows: int = RECENT_ROWS) -> list[str]:
    """The distinct non-empty values of `field_path` among the newest `rows` rows of `model`.

    The newest rows are read on the `newest_first` index and deduplicated here: as `pk IN (… LIMIT n)` with
    DISTINCT, PostgreSQL prefers a scan of the whole table.
    """
    newest = model._default_manager.order_by(newest_first).values_list(field_path, flat=True)[:rows]
    return sorted({value for value in newest if value})[:MAX_CHOICES]


def recent_values_filter(field_path: str, *, title, newest_first: str, parameter_name: str | None = None,
                         known_values: tuple[str, ...] = (),
                         recent_rows: int = RECENT_ROWS) -> type[RecentValuesFilter]:
    """A RecentValuesFilter class for `field_path`; its URL parameter is `parameter_name` (default: the path)."""
    return type(f"RecentValuesFilter_{field_path}", (RecentValuesFilter,), {
        "field_path": field_path, "title": title, "newest_first": newest_first, "recent_rows": recent_rows,
        "parameter_name": parameter_name or field_path, "known_values": tuple(known_values)})
