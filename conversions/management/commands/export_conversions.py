"""`manage.py export_conversions --format yandex|google [--from DATE] [--to DATE]`: won sales as a platform's CSV.

Incremental: a sale goes into one file per platform, ever (conversions/services.py). Writes to stdout, or to
--output FILE.
"""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from conversions.models import ConversionExport
from conversions.services import export_conversions

ID_TYPES = {"clientid": ConversionExport.IdType.CLIENT_ID, "yclid": ConversionExport.IdType.YCLID}


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a date: write YYYY-MM-DD, e.g. 2026-05-01.") from None


class Command(BaseCommand):
    help = ("Write the won sales not yet exported to a platform as its offline-conversion CSV (Yandex Metrika "
            "or Google Ads), and remember them so the next export leaves them out.")

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=["yandex", "google"], dest="platform")
        parser.add_argument("--from", dest="date_from", type=_date, help="First day won (YYYY-MM-DD), included.")
        parser.add_argument("--to", dest="date_to", type=_date, help="Last day won (YYYY-MM-DD), included.")
        parser.add_argument("--yandex-id", choices=sorted(ID_TYPES), default="clientid",
                            help="Yandex: the Metrika ClientID (default) or the yclid; one id type per file.")
        parser.add_argument("--output", help="Write the CSV to this file instead of stdout.")

    def handle(self, *args, platform, date_from, date_to, yandex_id, output, **options):
        if date_from and date_to and date_from > date_to:
            raise CommandError(f"--from {date_from} is after --to {date_to}.")
        id_type = ID_TYPES[yandex_id] if platform == "yandex" else None
        export = export_conversions(platform, id_type, date_from=date_from, date_to=date_to)
        if output:
            with open(output, "wb") as file:
                file.write(export.content)
        else:
            self.stdout.write(export.content.decode(), ending="")
        self.stderr.write(f"{len(export.records)} sale(s) exported to {platform} ({export.id_type}).")
