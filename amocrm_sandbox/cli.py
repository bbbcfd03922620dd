"""The sandbox's command line, the same for `python -m amocrm_sandbox` and `manage.py amocrm_sandbox`."""

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TextIO

from .harness import ROOT
from .persistence import StateFileError
from .server import Sandbox
from .state import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_BLOCK_THRESHOLD,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TOKEN_LIFETIME,
    default_accounts,
)

DESCRIPTION = ("Serve a strict local amoCRM sandbox: account N on PORT+N-1, the consent page on the next port, "
               "the control API under /_sandbox/ on every one. What the accounts hold is kept in a state file.")
CALLBACK_PATH = "/amocrm/oauth/callback/"
STATE_FILE_NAME = "sandbox-state.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8765, help="Port of the first account (0: free ports).")
    parser.add_argument("--bind", default="127.0.0.1", help="Address to listen on.")
    parser.add_argument("--accounts", type=int, default=1, help="Number of fake accounts.")
    parser.add_argument("--account-id", type=int, default=DEFAULT_ACCOUNT_ID, help="Id of the first account.")
    parser.add_argument("--subdomain", default="sandbox", help="Subdomain of the first account.")
    parser.add_argument("--currency", default="RUB")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--redirect-uri", default=None,
                        help="The integration's redirect URI. Default: the site's callback, built from SITE_URL, "
                             "else from PORT (http://localhost:$PORT), as the site builds it.")
    parser.add_argument("--token-lifetime", type=int, default=DEFAULT_TOKEN_LIFETIME,
                        help="Access token lifetime in seconds.")
    parser.add_argument("--rate-limit", type=int, default=DEFAULT_RATE_LIMIT,
                        help="Requests per second per account before 429.")
    parser.add_argument("--block-threshold", type=int, default=DEFAULT_BLOCK_THRESHOLD,
                        help="429 answers within a minute before the account is blocked with 403.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the fault-injection RNG.")
    parser.add_argument("--state", default=None,
                        help=f"State file kept across restarts (default: $VAR_DIR/{STATE_FILE_NAME}, "
                             f"VAR_DIR defaulting to ./var).")
    parser.add_argument("--no-state", action="store_true", help="Keep nothing: in memory only, as in the tests.")
    parser.add_argument("--fresh", action="store_true",
                        help="Start with empty accounts; new ids still continue after the ones handed out before.")
    parser.add_argument("--json", action="store_true", help="Print the origins and credentials as one JSON line.")


def serve(options: dict, out: TextIO) -> None:
    """Start the sandbox, print what to connect with, and serve until Ctrl-C."""
    state_file = None if options["no_state"] else Path(options["state"] or default_state_file())
    sandbox = Sandbox(
        accounts=default_accounts(options["accounts"], first_account_id=options["account_id"],
                                  subdomain=options["subdomain"], currency=options["currency"]),
        bind=options["bind"], port=options["port"], client_id=options["client_id"],
        client_secret=options["client_secret"], redirect_uri=options["redirect_uri"] or site_callback_url(),
        token_lifetime=options["token_lifetime"], rate_limit=options["rate_limit"],
        block_threshold=options["block_threshold"], seed=options["seed"], state_file=state_file,
        fresh=options["fresh"],
    ).start()
    try:
        out.write(announcement(sandbox, as_json=options["json"]) + "\n")
        out.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amocrm_sandbox", description=DESCRIPTION)
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    try:
        serve(options, sys.stdout)
    except StateFileError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def default_state_file() -> Path:
    return Path(os.environ.get("VAR_DIR") or ROOT / "var") / STATE_FILE_NAME


def site_callback_url(environ: dict[str, str] | None = None) -> str:
    """The site's OAuth callback as config/settings.py builds it: SITE_URL, else http://localhost:$PORT.

    Read from the environment, then from the project's .env (ENV_FILE), the way the site reads them,
    so `PORT=8001 make sandbox` and `PORT=8001 make run` agree.
    """
    environ = os.environ if environ is None else environ
    file_values = _env_file_values(environ)

    def value(name: str) -> str:
        return environ.get(name) or file_values.get(name) or ""

    site_url = value("SITE_URL") or f"http://localhost:{value('PORT') or 8000}"
    return site_url.rstrip("/") + CALLBACK_PATH


def _env_file_values(environ: dict[str, str]) -> dict[str, str]:
    """SITE_URL and PORT from the .env file the site would read (none when ENV_FILE is set empty)."""
    name = environ.get("ENV_FILE")
    path = ROOT / ".env" if name is None else Path(name) if name else None
    if path is None or not path.is_file():
        return {}
    values = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, equals, raw = line.strip().removeprefix("export ").partition("=")
        if equals and key.strip() in ("SITE_URL", "PORT"):
            values[key.strip()] = raw.strip().strip("'\"")
    return values


def announcement(sandbox: Sandbox, *, as_json: bool) -> str:
    integration = sandbox.integration
    if as_json:
        return json.dumps({"accounts": [account.describe() for account in sandbox.accounts],
                           "www_origin": sandbox.www_origin, **integration.as_dict(),
                           "state_file": str(sandbox.state_file.path) if sandbox.state_file else None})
    first = sandbox.accounts[0].origin
    connect = (f"code=$(curl -s -X POST {first}/_sandbox/authorize | "
               "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"code\"])')\n"
               f"  DEBUG=true .venv/bin/python manage.py amocrm_connect --host {first} "
               f"--client-id {shlex.quote(integration.client_id)} "
               f"--client-secret {shlex.quote(integration.client_secret)} "
               f"--redirect-uri {shlex.quote(integration.redirect_uri)} --code \"$code\" --json")
    kept = (f"kept in {sandbox.state_file.path} (--fresh starts empty, --no-state keeps nothing)"
            if sandbox.state_file else "in memory only")
    lines = ["amoCRM sandbox is running (Ctrl-C to stop).", ""]
    lines += [f"  account {account.account_id} ({account.subdomain}, {account.currency}): {account.origin}"
              for account in sandbox.accounts]
    lines += [
        f"  consent page (www):   {sandbox.www_origin}/oauth",
        f"  state:                {kept}",
        "",
        f"  client id:     {integration.client_id}",
        f"  client secret: {integration.client_secret}",
        f"  redirect URI:  {integration.redirect_uri}",
        "                 (the site's callback from SITE_URL or PORT; start the site with the same ones)",
        "",
        f"  AMOCRM_TRUSTED_HOSTS={','.join(account.origin for account in sandbox.accounts)}",
        f"  authorization code: curl -X POST {first}/_sandbox/authorize",
        f"  control API:        {first}/_sandbox",
        "",
        "  Connect the site from the command line:",
        f"  {connect}",
    ]
    return "\n".join(lines)
