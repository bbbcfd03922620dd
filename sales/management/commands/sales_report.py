"""`manage.py sales_report`: the admin report's figures per group, as JSON or CSV, for schedules and scripts."""

import json
from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation
from django.utils.translation import gettext as _

from sales import report as reports
from sales import report_output
from sales.selectors import ReportPeriodError


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(_("“%(value)s” is not a date like 2026-03-31.") % {"value": text}) from None


class Command(BaseCommand):
    help = "Print the sales report (leads, deals, won, lost, revenue, cost, ROMI… per group) as JSON or CSV."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", required=True, help="last day (included), YYYY-MM-DD")
        parser.add_argument("--group-by", choices=list(reports.GROUPINGS), default="utm_campaign")
        parser.add_argument("--attribution", choices=list(reports.ATTRIBUTIONS), default="last")
        parser.add_argument("--format", choices=["json", "csv"], default="json")
        parser.add_argument("--account", type=int, default=None, help="only this account (its id in the admin)")
        parser.add_argument("--pipeline", type=int, default=None,
                            help="amoCRM id of the pipeline whose funnel to compute (default: the one with most leads)")
        parser.add_argument("--language", default=None,
                            help="language of the headers and CSV dialect: ru gives Russian, `;` and decimal commas")

    def handle(self, *args, **options):
        # Headers, group names and the CSV dialect in the language asked for (else the site's).
        with translation.override(options["language"] or settings.LANGUAGE_CODE):
            self._print(options)

    def _print(self, options) -> None:
        try:
            report = reports.sales_report(
                date_from=_day(options["date_from"]), date_to=_day(options["date_to"]),
                group_by=options["group_by"], attribution=options["attribution"], account_id=options["account"],
                pipeline_id=options["pipeline"])
        except ReportPeriodError as exc:
            raise CommandError(str(exc)) from exc
        if options["format"] == "csv":
            self.stdout.write(report_output.report_csv(report, language=options["language"]).decode("utf-8"),
                              ending="")
            return
        document = {
            "from": report.date_from.isoformat(), "to": report.date_to.isoformat(), "group_by": report.group_by,
            "attribution": report.attribution, "currency": report.currency, "pipeline": report.pipeline_name,
            "stages": [{"id": stage.id, "name": stage.name} for stage in report.stages],
            "rows": [{**report_output.json_ready(record), "funnel": {str(stage.id): row.funnel.get(stage.id, 0)
                                                                     for stage in report.stages}}
                     for record, row in zip(report_output.report_records(report), report_output.report_lines(report),
                                            strict=True)],
        }
        self.stdout.write(json.dumps(document, ensure_ascii=False, indent=2))
