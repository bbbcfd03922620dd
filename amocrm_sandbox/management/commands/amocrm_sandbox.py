"""`manage.py amocrm_sandbox`: serve strict fake amoCRM accounts on local ports until Ctrl-C."""

import json
import time

from django.core.management.base import BaseCommand, CommandParser

from amocrm_sandbox import Sandbox, default_accounts
from amocrm_sandbox.state import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_BLOCK_THRESHOLD,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_RATE_LIMIT,
    DEFAULT_REDIRECT_URI,
    DEFAULT_TOKEN_LIFETIME,
)


class Command(BaseCommand):
    help = ("Serve a strict local amoCRM sandbox (in memory): account N on PORT+N-1, the consent page "
            "on the next port, the control API under /_sandbox/ on every one.")
    # Starts in well under a second and never touches the database: skip checks and migrations.
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8765, help="Port of the first account (0: free ports).")
        parser.add_argument("--bind", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument("--accounts", type=int, default=1, help="Number of fake accounts.")
        parser.add_argument("--account-id", type=int, default=DEFAULT_ACCOUNT_ID, help="Id of the first account.")
        parser.add_argument("--subdomain", default="sandbox", help="Subdomain of the first account.")
        parser.add_argument("--currency", default="RUB")
        parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
        parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
        parser.add_argument("--redirect-uri", default=DEFAULT_REDIRECT_URI)
        parser.add_argument("--token-lifetime", type=int, default=DEFAULT_TOKEN_LIFETIME,
                            help="Access token lifetime in seconds.")
        parser.add_argument("--rate-limit", type=int, default=DEFAULT_RATE_LIMIT,
                            help="Requests per second per account before 429.")
        parser.add_argument("--block-threshold", type=int, default=DEFAULT_BLOCK_THRESHOLD,
                            help="429 answers within a minute before the account is blocked with 403.")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the fault-injection RNG.")
        parser.add_argument("--json", action="store_true", help="Print the origins and credentials as one JSON line.")

    def handle(self, *args, **options) -> None:
        sandbox = Sandbox(
            accounts=default_accounts(options["accounts"], first_account_id=options["account_id"],
                                      subdomain=options["subdomain"], currency=options["currency"]),
            bind=options["bind"], port=options["port"], client_id=options["client_id"],
            client_secret=options["client_secret"], redirect_uri=options["redirect_uri"],
            token_lifetime=options["token_lifetime"], rate_limit=options["rate_limit"],
            block_threshold=options["block_threshold"], seed=options["seed"],
        ).start()
        try:
            self._announce(sandbox, as_json=options["json"])
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            sandbox.stop()

    def _announce(self, sandbox: Sandbox, *, as_json: bool) -> None:
        integration = sandbox.integration
        if as_json:
            self.stdout.write(json.dumps({"accounts": [account.describe() for account in sandbox.accounts],
                                          "www_origin": sandbox.www_origin, **integration.as_dict()}))
        else:
            lines = ["amoCRM sandbox is running (Ctrl-C to stop).", ""]
            lines += [f"  account {account.account_id} ({account.subdomain}, {account.currency}): {account.origin}"
                      for account in sandbox.accounts]
            lines += [
                f"  consent page (www):   {sandbox.www_origin}/oauth",
                "",
                f"  client id:     {integration.client_id}",
                f"  client secret: {integration.client_secret}",
                f"  redirect URI:  {integration.redirect_uri}",
                "",
                f"  AMOCRM_TRUSTED_HOSTS={','.join(account.origin for account in sandbox.accounts)}",
                f"  authorization code: curl -X POST {sandbox.accounts[0].origin}/_sandbox/authorize",
                f"  control API:        {sandbox.accounts[0].origin}/_sandbox",
            ]
            self.stdout.write("\n".join(lines))
        self.stdout.flush()
