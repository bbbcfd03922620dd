"""In-memory state of the sandbox: registered integrations and, per fake account, everything it holds."""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

from .catalog import TRACKING_CODES, build_catalog
from .clock import SandboxClock
from .entities import EntityIds, EntityStore
from .faults import FaultPlan
from .limits import RateLimiter, TrafficStats
from .tokens import TokenStore
from .webhooks_out import WebhookOutbox

DEFAULT_ACCOUNT_ID = 31_000_001
DEFAULT_CLIENT_ID = "5a4db0c0-0000-4000-8000-000000000001"
# Printed by `manage.py amocrm_sandbox`: a fake account's credentials are no secret.
DEFAULT_CLIENT_SECRET = "SandboxSecretForLocalTestsOnly0123456789abcdefghijklmnopqrstuvwx"  # noqa: S105
DEFAULT_REDIRECT_URI = "http://localhost:8000/amocrm/oauth/callback/"
DEFAULT_TOKEN_LIFETIME = 86400
DEFAULT_RATE_LIMIT = 7
DEFAULT_BLOCK_THRESHOLD = 20
LONG_LIVED_DEFAULT_SECONDS = 365 * 86400

RESET_PARTS = ("entities", "tokens", "stats", "limits", "faults", "webhooks", "deliveries")


@dataclass(frozen=True)
class AccountConfig:
    account_id: int = DEFAULT_ACCOUNT_ID
    subdomain: str = "sandbox"
    currency: str = "RUB"
    name: str | None = None
    # None: the port follows the sandbox's (its port + the account's position, or a free one).
    port: int | None = None
    # None: every tracking code (UTMs and click ids), except that the second account lacks UTM_TERM, so that mapping
    # "codes the account lacks" (docs/amocrm.md#entities) can be tested against it.
    tracking_codes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Integration:
    client_id: str
    client_secret: str
    redirect_uri: str

    def as_dict(self) -> dict:
        return {"client_id": self.client_id, "client_secret": self.client_secret, "redirect_uri": self.redirect_uri}


def default_accounts(count: int = 1, *, first_account_id: int = DEFAULT_ACCOUNT_ID, subdomain: str = "sandbox",
                     currency: str = "RUB") -> list[AccountConfig]:
    """`count` accounts with consecutive ids; the second and later get numbered subdomains."""
    return [
        AccountConfig(account_id=first_account_id + position,
                      subdomain=subdomain if position == 0 else f"{subdomain}{position + 1}", currency=currency)
        for position in range(count)
    ]


class AccountState:
    """One fake amoCRM account. Handlers hold `lock` while they read or change anything in it."""

    def __init__(self, *, config: AccountConfig, position: int, clock: SandboxClock, rate_limit: int,
                 block_threshold: int, token_lifetime: int, seed: int) -> None:
        self.config = config
        self.position = position
        self.clock = clock
        self.lock = threading.RLock()
        self.origin = ""  # known once the server has bound its port
        self.token_lifetime = token_lifetime
        self._seed = seed
        tracking_codes = config.tracking_codes
        if tracking_codes is None:
            tracking_codes = tuple(code for code in TRACKING_CODES if position != 1 or code != "UTM_TERM")
        self.catalog = build_catalog(position=position, tracking_codes=tracking_codes)
        # Outlive a reset of the entities and, with a state file, a restart: ids are never handed out twice.
        self.ids = EntityIds.for_position(position)
        self.store = EntityStore(ids=self.ids)
        self.tokens = TokenStore()
        self.limiter = RateLimiter(rate_limit=rate_limit, block_threshold=block_threshold)
        self.stats = TrafficStats()
        self.faults = FaultPlan(seed=seed)
        self.outbox = WebhookOutbox(clock)

    @property
    def account_id(self) -> int:
        return self.config.account_id

    @property
    def subdomain(self) -> str:
        return self.config.subdomain

    @property
    def currency(self) -> str:
        return self.config.currency

    @property
    def name(self) -> str:
        return self.config.name or f"Sandbox {self.config.subdomain}"

    @property
    def host(self) -> str:
        """The account host without scheme, as amoCRM puts it into the OAuth `referer`."""
        return urlparse(self.origin).netloc

    def now(self) -> int:
        return int(self.clock())

    def token_claims(self) -> dict:
        return {"sub": str(self.catalog.admin.id), "account_id": self.account_id, "base_domain": self.host,
                "api_domain": self.host, "version": 2, "scopes": ["crm", "notifications"]}

    def describe(self) -> dict:
        return {"account_id": self.account_id, "subdomain": self.subdomain, "currency": self.currency,
                "name": self.name, "origin": self.origin, "host": self.host}

    def export(self) -> dict:
        """What survives a restart: entities, issued credentials, webhook subscriptions and the id sequences.

        Not kept: traffic counters, the rate limiter, fault plans and webhook deliveries, which
        describe one run, and the settings, which come from the command line.
        """
        with self.lock:
            return {"account_id": self.account_id, "ids": self.ids.export(), **self.store.export(),
                    "tokens": self.tokens.export(), "webhooks": self.outbox.export()}

    def restore(self, saved: dict, *, fresh: bool = False) -> None:
        """Take back what export() gave; `fresh` keeps only the id sequences, so new ids still continue upward."""
        with self.lock:
            self.ids.restore(saved.get("ids", {}))
            self.outbox.restore(saved.get("webhooks", {}), subscriptions=not fresh)
            if not fresh:
                self.store.restore(saved)
                self.tokens.restore(saved.get("tokens", {}))

    def reset(self, parts: tuple[str, ...] = RESET_PARTS) -> None:
        with self.lock:
            if "entities" in parts:
                self.store = EntityStore(ids=self.ids)
            if "tokens" in parts:
                self.tokens = TokenStore()
            if "stats" in parts:
                self.stats = TrafficStats()
            if "limits" in parts:
                self.limiter.reset()
            if "faults" in parts:
                self.faults = FaultPlan(seed=self._seed)
            if "webhooks" in parts:
                self.outbox.clear_subscriptions()
            if "deliveries" in parts:
                self.outbox.clear_deliveries()


class SandboxState:
    """Everything the handlers see: the accounts, the integrations, the clock, the consent toggle."""

    def __init__(self, *, accounts: list[AccountState], integrations: list[Integration], clock: SandboxClock) -> None:
        self.accounts = accounts
        self.clock = clock
        self.lock = threading.Lock()
        self.integrations: dict[str, Integration] = {item.client_id: item for item in integrations}
        # When set, the consent page answers as if the user clicked "Deny".
        self.deny_consent = False
        self.www_origin = ""
        # Called after every request that may have changed something kept (the state file's save), or None.
        self.on_change: Callable[[], None] | None = None

    def account(self, account_id: int) -> AccountState | None:
        return next((account for account in self.accounts if account.account_id == account_id), None)

    def integration(self, client_id: str | None) -> Integration | None:
        with self.lock:
            return self.integrations.get(client_id) if client_id else None

    def register_integration(self, integration: Integration) -> Integration:
        with self.lock:
            self.integrations[integration.client_id] = integration
        return integration
