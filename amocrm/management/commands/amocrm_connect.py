"""manage.py amocrm_connect: create or update an account and connect it with a code or a long-lived token."""

import json
import logging
import os
import sys
from contextlib import contextmanager

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from django.utils.translation import gettext as _

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


# Where each secret comes from when its option is left out. A value on the command line is
# visible to every user in `ps` and stays in the shell history; these two ways are not.
SECRET_VARIABLES = {"client_secret": "AMOCRM_CLIENT_SECRET", "code": "AMOCRM_CODE",
                    "long_lived_token": "AMOCRM_LONG_LIVED_TOKEN"}
FROM_STDIN = "-"


class Command(BaseCommand):
    help = (
        "Connect an amoCRM/Kommo account without a browser (private integrations): exchange an authorization "
        "code or store a long-lived token, fetch the account's metadata and subscribe the webhook. "
        "Secrets given as option values are visible in `ps` and the shell history: leave the option out to read "
        "the value from the environment (AMOCRM_CLIENT_SECRET, AMOCRM_CODE, AMOCRM_LONG_LIVED_TOKEN), or give "
        "'-' to read it from standard input, one line per '-' in this order: client secret, then code or token."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", required=True, help="Account host, e.g. example.amocrm.ru")
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--client-secret",
                            help="The integration's secret key; '-' reads it from standard input; "
                                 "left out: $AMOCRM_CLIENT_SECRET")
        parser.add_argument("--redirect-uri", required=True)
        grant = parser.add_mutually_exclusive_group()
        grant.add_argument("--code", help="Authorization code from the integration's settings (valid 20 minutes); "
                                          "'-' reads it from standard input; left out: $AMOCRM_CODE")
        grant.add_argument("--long-lived-token", help="Long-lived token from the integration's settings; '-' reads "
                                                      "it from standard input; left out: $AMOCRM_LONG_LIVED_TOKEN")
        parser.add_argument("--name", help="Name for this connection (default: the host)")
        parser.add_argument("--json", action="store_true", help="Print one JSON object with the result")

    def handle(self, *args, **opts):
        if opts["json"]:
            with logs_on_stderr():
                return self._handle(opts)
        return self._handle(opts)

    def _from_stdin(self, option: str) -> str:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise CommandError(_("%(option)s -: standard input has no (or an empty) line for it. Give one line per "
                                 "'-': the client secret first, then the code or token.") % {"option": option})
        return value

    def _secrets(self, opts) -> tuple[str, str | None, str | None]:
        """The client secret and the code or long-lived token: from the option, standard input ('-') or the env."""
        def given(name: str, option: str) -> str | None:
            value = opts[name]
            return self._from_stdin(option) if value == FROM_STDIN else value

        secret = given("client_secret", "--client-secret") or os.environ.get(SECRET_VARIABLES["client_secret"])
        if not secret:
            raise CommandError(_("No client secret: give --client-secret - (read from standard input) or set "
                                 "AMOCRM_CLIENT_SECRET."))
        code = given("code", "--code")
        token = given("long_lived_token", "--long-lived-token")
        if code is None and token is None:
            code = os.environ.get(SECRET_VARIABLES["code"]) or None
            token = os.environ.get(SECRET_VARIABLES["long_lived_token"]) or None
            if code and token:
                raise CommandError(_("Both AMOCRM_CODE and AMOCRM_LONG_LIVED_TOKEN are set: set only one of them."))
            if not code and not token:
                raise CommandError(_("No authorization code or long-lived token: give --code or --long-lived-token "
                                     "('-' reads it from standard input) or set AMOCRM_CODE or "
                                     "AMOCRM_LONG_LIVED_TOKEN."))
        return secret, code, token

    def _handle(self, opts):
        try:
            origin = normalize_account_host(opts["host"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        client_secret, code, long_lived_token = self._secrets(opts)
        # Idempotent: the same host always updates the same account.
        account = Account.objects.filter(host=origin).first() or Account(host="")
        account.name = opts["name"] or account.name or origin.split("://", 1)[1]
        account.client_id = opts["client_id"]
        account.client_secret = client_secret
        account.redirect_uri = opts["redirect_uri"]
        account.save()
        try:
            result = account_connect(account=account, host=origin, code=code, long_lived_token=long_lived_token)
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
                "lead_hook_url": _hook_url(default_source) if default_source else None,
            }))
            return
        name = account.amocrm_name or account.host
        # For people (the language of LANGUAGE_CODE); --json stays the same in every language.
        self.stdout.write(self.style.SUCCESS(_("Connected %(name)s (account %(id)s).") % {"name": name,
                                                                                          "id": account.pk}))
        self.stdout.write(_("Webhook URL: %(url)s") % {"url": account.webhook_url})
        for note in (result.metadata_error, result.webhook_error):
            if note:
                self.stdout.write(self.style.WARNING(note))
        if default_source:
            self.stdout.write(_("Lead source key: %(key)s") % {"key": default_source.public_key})
            self.stdout.write(_("Form-builder hook URL (keep it secret): %(url)s") % {"url": _hook_url(default_source)})


def _hook_url(source) -> str:
    """The lead source's form-builder hook URL (leads.sources.lead_source_hook_url, without importing leads here)."""
    return settings.SITE_URL + reverse("lead-hook", kwargs={"secret": source.hook_secret})
