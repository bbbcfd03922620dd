"""manage.py amocrm_connect: create or update an account and connect it with a code or a long-lived token."""

import json
import logging
import sys
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError

from amocrm.hosts import normalize_account_host
from amocrm.models import Account
from amocrm.services import ConnectError, account_connect


@contextmanager
def logs_on_stderr():
    """With --json, stdout must carry exactly one JSON object: the log lines go to stderr meanwhile."""
    moved = [h for h in logging.getLogger().handlers
             if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stdout]
    for handler in moved:
        handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler in moved:
            handler.setStream(sys.stdout)


class Command(BaseCommand):
    help = (
        "Connect an amoCRM/Kommo account without a browser (private integrations): exchange an authorization "
        "code or store a long-lived token, fetch the account's metadata and subscribe the webhook."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", required=True, help="Account host, e.g. example.amocrm.ru")
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--client-secret", required=True)
        parser.add_argument("--redirect-uri", required=True)
        grant = parser.add_mutually_exclusive_group(required=True)
        grant.add_argument("--code", help="Authorization code from the integration's settings (valid 20 minutes)")
        grant.add_argument("--long-lived-token", help="Long-lived token from the integration's settings")
        parser.add_argument("--name", help="Name for this connection (default: the host)")
        parser.add_argument("--json", action="store_true", help="Print one JSON object with the result")

    def handle(self, *args, **opts):
        if opts["json"]:
            with logs_on_stderr():
                return self._handle(opts)
        return self._handle(opts)

    def _handle(self, opts):
        try:
            origin = normalize_account_host(opts["host"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        # Idempotent: the same host always updates the same account.
        account = Account.objects.filter(host=origin).first() or Account(host="")
        account.name = opts["name"] or account.name or origin.split("://", 1)[1]
        account.client_id = opts["client_id"]
        account.client_secret = opts["client_secret"]
        account.redirect_uri = opts["redirect_uri"]
        account.save()
        try:
            result = account_connect(account=account, host=origin, code=opts["code"],
                                     long_lived_token=opts["long_lived_token"])
        except ConnectError as exc:
            raise CommandError(str(exc)) from exc
        account = result.account
        source = getattr(account, "lead_sources", None)
        default_source = source.order_by("pk").first() if source is not None else None
        if opts["json"]:
            self.stdout.write(json.dumps({
                "account": account.pk,
                "amocrm_account_id": account.amocrm_account_id,
                "webhook_url": account.webhook_url,
                "lead_source_key": default_source.public_key if default_source else None,
            }))
            return
        name = account.amocrm_name or account.host
        self.stdout.write(self.style.SUCCESS(f"Connected {name} (account {account.pk})."))
        self.stdout.write(f"Webhook URL: {account.webhook_url}")
        for note in (result.metadata_error, result.webhook_error):
            if note:
                self.stdout.write(self.style.WARNING(note))
        if default_source:
            self.stdout.write(f"Lead source key: {default_source.public_key}")
