"""`manage.py export_conversions --format yandex|google [--from DATE] [--to DATE]`: won sales as a platform's CSV.

Incremental: a sale goes into one file per platform, ever (conversions/services.py). Writes to stdout, or to
--output FILE.
"""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from conversions.models import ConversionExport
from conversions.services import export_conversions

ID_TYPES = {"clientid": ConversionExport.IdType.CLIENT_ID, "yclid": ConversionExport.IdType.YCLID}


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        message = _("“%(value)s” is not a date: write YYYY-MM-DD, e.g. 2026-05-01.") % {"value": text}
        raise CommandError(message) from None


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
            raise CommandError(_("--from %(start)s is after --to %(end)s.") % {"start": date_from, "end": date_to})
        id_type = ID_TYPES[yandex_id] if platform == "yandex" else None
        export = export_conversions(platform, id_type, date_from=date_from, date_to=date_to)
        if output:
            with open(output, "wb") as file:
                file.write(export.content)
        else:
            self.stdout.write(export.content.decode(), ending="")
        count = len(export.records)
        self.stderr.write(ngettext("%(count)s sale exported to %(platform)s (%(id_type)s).",
                                   "%(count)s sales exported to %(platform)s (%(id_type)s).", count)
                          % {"count": count, "platform": platform, "id_type": export.id_type})
