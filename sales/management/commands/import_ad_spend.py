"""`manage.py import_ad_spend FILE`: upsert ad spend from a CSV (date, UTM source, medium, campaign, cost, currency)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from sales.spend import SpendImportError, spend_import


class Command(BaseCommand):
    help = "Import ad spend from a CSV file; the same day and campaign imported again replaces its cost."

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV with columns date, utm_source, utm_medium, utm_campaign, cost, currency")

    def handle(self, *args, **options):
        path = Path(options["file"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(_("Cannot read %(path)s: %(reason)s.") % {"path": path, "reason": exc.strerror}) from exc
        try:
            result = spend_import(data)
        except SpendImportError as exc:
            raise CommandError(_("Nothing was imported; fix these lines and run again:\n%(errors)s")
                               % {"errors": exc}) from exc
        self.stdout.write(_("Imported %(rows)s rows (%(created)s new, %(updated)s updated) for %(days)s days.")
                          % {"rows": result.rows, "created": result.created, "updated": result.updated,
                             "days": len(result.days)})
