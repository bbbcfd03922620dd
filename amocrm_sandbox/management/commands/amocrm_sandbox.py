"""`manage.py amocrm_sandbox`: serve strict fake amoCRM accounts on local ports until Ctrl-C (amocrm_sandbox/cli.py)."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from amocrm_sandbox import cli
from amocrm_sandbox.persistence import StateFileError


class Command(BaseCommand):
    help = cli.DESCRIPTION
    # Starts in well under a second and never touches the database: skip checks and migrations.
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args, **options) -> None:
        try:
            cli.serve(options, self.stdout)
        except StateFileError as exc:
            raise CommandError(str(exc)) from exc
