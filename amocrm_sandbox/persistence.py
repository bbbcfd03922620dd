"""The sandbox's state file: what its accounts hold, written atomically after every change and loaded at start.

A sandbox started from the command line keeps its accounts in `var/sandbox-state.json`, so that
restarting it does not wipe the deals and tokens the site already knows, and, above all, never hands
out a deal id twice: the site stores amoCRM's deal ids, and a reused id would credit one visitor's
sale to another's lead. The file is replaced in one step (a temporary file, fsync, rename), so a
crash leaves the previous version, never half of one. Accounts in the file that this run does not
serve are written back untouched.
"""

import json
import os
import tempfile
import threading
import time
from pathlib import Path

from .state import Integration, SandboxState

FORMAT_VERSION = 1


class StateFileError(Exception):
    """The state file exists but cannot be used; the message says what to do."""


class StateFile:
    """One sandbox's state on disk: `load()` once before serving, `save()` after every change."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._dormant: dict[str, dict] = {}  # accounts in the file this run does not serve

    def load(self, sandbox: SandboxState, *, fresh: bool = False) -> bool:
        """Restore the sandbox from the file (`fresh`: only the id sequences); False when there is no file."""
        if not self.path.exists():
            return False
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(saved, dict) or saved.get("version") != FORMAT_VERSION:
                raise ValueError(f"not a version {FORMAT_VERSION} sandbox state")
            accounts = saved.get("accounts", {})
            for account in sandbox.accounts:
                if str(account.account_id) in accounts:
                    account.restore(accounts[str(account.account_id)], fresh=fresh)
            serving = {str(account.account_id) for account in sandbox.accounts}
            self._dormant = {key: _only_ids(value) if fresh else value
                             for key, value in accounts.items() if key not in serving}
            if not fresh:
                sandbox.clock.advance(float(saved.get("clock_offset", 0)))
                for data in saved.get("integrations", []):
                    if sandbox.integration(data["client_id"]) is None:  # the command line's own wins
                        sandbox.register_integration(Integration(**data))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise StateFileError(
                f"The sandbox state file {self.path} cannot be read ({exc}). Move it away to start over "
                "(deal and contact ids then start from the beginning again, so connect the site afresh), "
                "or run without a state file (--no-state)."
            ) from exc
        return True

    def save(self, sandbox: SandboxState) -> None:
        """Write the whole state to a temporary file next to the real one, then rename it over the real one."""
        with self._lock:
            with sandbox.lock:
                integrations = [item.as_dict() for item in sandbox.integrations.values()]
            snapshot = {
                "version": FORMAT_VERSION,
                "saved_at": time.time(),
                "clock_offset": sandbox.clock.offset,
                "integrations": integrations,
                "accounts": {**self._dormant, **{str(account.account_id): account.export()
                                                 for account in sandbox.accounts}},
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                    json.dump(snapshot, stream, ensure_ascii=False, separators=(",", ":"))
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise


def _only_ids(saved: dict) -> dict:
    """What `--fresh` keeps of an account: where its id sequences stand."""
    return {"account_id": saved.get("account_id"), "ids": saved.get("ids", {}),
            "webhooks": {"next_id": saved.get("webhooks", {}).get("next_id", 1), "subscriptions": []}}
