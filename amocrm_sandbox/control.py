"""A small `requests` client for the sandbox's control API, for tests, benchmarks and e2e harnesses."""

import time
from typing import Any

import requests

TIMEOUT_SECONDS = 10


class SandboxControlError(Exception):
    pass


class SandboxControl:
    """Wraps `/_sandbox/...` on any sandbox server; `account_id=None` means the account of that server.

    Only the control API is called here: it counts toward no limit and needs no token.
    """

    def __init__(self, origin: str, *, session: requests.Session | None = None) -> None:
        self.origin = origin.rstrip("/")
        self.session = session or requests.Session()

    # -- integrations and credentials ---------------------------------------------------------

    def overview(self) -> dict:
        return self._call("GET", "")

    def register_integration(self, *, redirect_uri: str, client_id: str | None = None,
                             client_secret: str | None = None) -> dict:
        return self._call("POST", "/integrations", {"redirect_uri": redirect_uri, "client_id": client_id,
                                                    "client_secret": client_secret})

    def authorize(self, *, client_id: str | None = None, account_id: int | None = None) -> dict:
        """An authorization code as the consent page would issue it: {"code", "referer", "origin", ...}."""
        return self._call("POST", "/authorize", {"client_id": client_id, "account_id": account_id})

    def long_lived_token(self, *, account_id: int | None = None, client_id: str | None = None,
                         expires_in: int | None = None) -> str:
        answer = self._call("POST", "/long-lived-token", {"account_id": account_id, "client_id": client_id,
                                                          "expires_in": expires_in})
        return answer["token"]

    def expire_tokens(self, account_id: int | None = None) -> int:
        return self._call("POST", f"{self._account(account_id)}/tokens/expire")["expired"]

    def deny_consent(self, deny: bool = True) -> None:
        self._call("POST", "/consent", {"deny": deny})

    def advance_clock(self, seconds: float) -> float:
        return self._call("POST", "/clock", {"advance": seconds})["now"]

    # -- inspection -----------------------------------------------------------------------------

    def entities(self, kind: str, account_id: int | None = None) -> list[dict]:
        """contacts, leads, notes, unsorted, webhooks or companies, in API shape (deleted deals included)."""
        return self._call("GET", f"{self._account(account_id)}/{kind}")

    def contacts(self, account_id: int | None = None) -> list[dict]:
        return self.entities("contacts", account_id)

    def leads(self, account_id: int | None = None) -> list[dict]:
        return self.entities("leads", account_id)

    def notes(self, account_id: int | None = None) -> list[dict]:
        return self.entities("notes", account_id)

    def tasks(self, account_id: int | None = None) -> list[dict]:
        return self.entities("tasks", account_id)

    def unsorted(self, account_id: int | None = None) -> list[dict]:
        return self.entities("unsorted", account_id)

    def webhooks(self, account_id: int | None = None) -> list[dict]:
        return self.entities("webhooks", account_id)

    def stats(self, account_id: int | None = None, *, timestamps: bool = False) -> dict:
        return self._call("GET", f"{self._account(account_id)}/stats", params={"timestamps": int(timestamps)})

    def duplicates(self, account_id: int | None = None, *, lead_field: int | str | None = None,
                   tag_prefix: str | None = None) -> dict:
        params = {key: value for key, value in (("lead_field", lead_field), ("tag_prefix", tag_prefix)) if value}
        return self._call("GET", f"{self._account(account_id)}/duplicates", params=params)

    # -- acting as a manager --------------------------------------------------------------------

    def move_deal(self, deal_id: int, *, status_id: int, pipeline_id: int | None = None, price: int | None = None,
                  reduced: bool = False, account_id: int | None = None, loss_reason_id: int | None = None) -> dict:
        payload = {"status_id": status_id, "reduced": reduced}
        payload.update({key: value for key, value in (("pipeline_id", pipeline_id), ("price", price),
                                                      ("loss_reason_id", loss_reason_id)) if value is not None})
        return self._call("POST", f"{self._account(account_id)}/deals/{deal_id}/move", payload)

    def delete_deal(self, deal_id: int, *, account_id: int | None = None) -> dict:
        return self._call("POST", f"{self._account(account_id)}/deals/{deal_id}/delete")

    def restore_deal(self, deal_id: int, *, account_id: int | None = None) -> dict:
        return self._call("POST", f"{self._account(account_id)}/deals/{deal_id}/restore")

    # -- faults, limits, webhooks, reset --------------------------------------------------------

    def set_faults(self, account_id: int | None = None, **faults: Any) -> dict:
        """Replace the fault plan: error_rate, error_status, latency_ms, timeout_rate, timeout_mode,
        timeout_seconds, commit_then_fail_rate, commit_then_fail_mode, include_oauth, paths, seed."""
        return self._call("POST", f"{self._account(account_id)}/faults", faults)

    def clear_faults(self, account_id: int | None = None) -> dict:
        return self._call("DELETE", f"{self._account(account_id)}/faults")

    def configure(self, account_id: int | None = None, *, rate_limit: int | None = None,
                  block_threshold: int | None = None, token_lifetime: int | None = None) -> dict:
        settings = {"rate_limit": rate_limit, "block_threshold": block_threshold, "token_lifetime": token_lifetime}
        return self._call("POST", f"{self._account(account_id)}/settings",
                          {key: value for key, value in settings.items() if value is not None})

    def disable_webhooks(self, destination: str | None = None, *, account_id: int | None = None) -> int:
        """amoCRM disables the subscription of `destination` (every one when None), as after failed deliveries."""
        return self._call("POST", f"{self._account(account_id)}/webhooks/disable",
                          {"destination": destination})["disabled"]

    def deliveries(self, account_id: int | None = None, *, wait: bool = True) -> list[dict]:
        """Webhook deliveries so far; by default after the ones in flight have finished."""
        return self._call("GET", f"{self._account(account_id)}/webhook-deliveries", params={"wait": int(wait)})

    def wait_for_deliveries(self, count: int, account_id: int | None = None, *, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.deliveries(account_id)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def deliver_raw(self, destination: str, body: str, *, content_type: str | None = None,
                    account_id: int | None = None) -> dict:
        return self._call("POST", f"{self._account(account_id)}/webhook-deliveries",
                          {"destination": destination, "body": body, "content_type": content_type})

    def reset(self, account_id: int | None = None, *, parts: list[str] | None = None) -> dict:
        """Everything by default; `parts` picks from entities, tokens, stats, limits, faults, webhooks, deliveries."""
        return self._call("POST", "/reset", {"account_id": account_id, "parts": parts})

    # -- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def _account(account_id: int | None) -> str:
        return f"/accounts/{account_id if account_id is not None else 'current'}"

    def _call(self, method: str, path: str, payload: dict | None = None, *, params: dict | None = None) -> Any:
        body = {key: value for key, value in payload.items() if value is not None} if payload is not None else None
        answer = self.session.request(method, f"{self.origin}/_sandbox{path}", json=body, params=params,
                                      timeout=TIMEOUT_SECONDS)
        if answer.status_code >= 400:
            raise SandboxControlError(f"{method} /_sandbox{path} → {answer.status_code}: {answer.text}")
        return answer.json()
