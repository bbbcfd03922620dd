"""Tokens: their storage, the bearer a client sends, and THE refresh — one per expiry across all workers and hosts.

The guarantee: however many workers, processes and hosts find an account's access token due (or
rejected with a 401) at the same moment, exactly one refresh call reaches amoCRM per expiry, and
every one of them goes on with the new token. It matters because amoCRM's refresh tokens are single
use (docs/amocrm.md#oauth): a second, concurrent refresh leaves the loser with "Token has been
revoked", and storing that failure would disconnect the account for good. `account_refresh_token`
is the only code that refreshes; the client calls it when a token falls due or a call answers 401,
and beat calls `account_refresh_expiring_tokens` so an idle account's refresh token never ages out.
"""

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from monitoring import metrics

from . import errors, oauth
from .models import Account, Token
from .transport import Transport, account_note_error

logger = logging.getLogger(__name__)

# Refresh this long before expiry so a call never starts with a token about to die.
REFRESH_AHEAD = timedelta(minutes=2)
LONG_LIVED_FALLBACK = timedelta(days=365 * 5)


# ---------------------------------------------------------------------------- storage


def token_store(*, account_id: int, access_token: str, refresh_token: str, expires_at: datetime,
                long_lived: bool) -> Token:
    """Save the account's one token (encrypted at rest); call it inside the transaction that connects the account."""
    token, _ = Token.objects.update_or_create(
        account_id=account_id,
        defaults={"access_token": access_token, "refresh_token": refresh_token, "expires_at": expires_at,
                  "long_lived": long_lived, "refreshed_at": timezone.now()},
    )
    return token


def token_delete(*, account_id: int) -> None:
    Token.objects.filter(account_id=account_id).delete()


def long_lived_expiry(token: str) -> datetime:
    """Long-lived tokens are JWTs; their `exp` claim says when they die. Unknown → the 5-year maximum."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        exp = json.loads(base64.urlsafe_b64decode(payload)).get("exp")
        if exp:
            return datetime.fromtimestamp(int(exp), tz=UTC)
    except (IndexError, ValueError, TypeError):
        logger.info("long-lived token is not a readable JWT; assuming the 5-year maximum")
    return timezone.now() + LONG_LIVED_FALLBACK


def account_needs_reauth(*, account_id: int, message: str) -> errors.TokenRevoked:
    """Stop every call for the account until the operator connects it again; returns the error to raise."""
    with transaction.atomic():
        Account.objects.filter(pk=account_id).update(state=Account.State.NEEDS_REAUTH)
        account_note_error(account_id=account_id, message=message)
    return errors.TokenRevoked(message, status=401)


# ---------------------------------------------------------------------------- the bearer a client sends


class BearerToken:
    """The access token one client sends for an account (the transport's `Credentials`), refreshed when due."""

    def __init__(self, account_id: int):
        self.account_id = account_id
        self._token: Token | None = None

    def current(self) -> Token:
        if self._token is None:
            token = Token.objects.filter(account_id=self.account_id).first()
            if token is None:
                raise errors.AccountUnavailable("The account has no token: connect it first.")
            self._token = token
        return self._token

    def refresh(self) -> Token:
        """Replace the token this client last sent (due, or answered 401) — at most once per expiry, see above."""
        self._token = account_refresh_token(account_id=self.account_id, stale_access_token=self.current().access_token)
        return self._token

    def headers(self) -> dict[str, str]:
        token = self.current()
        if token.refresh_due(ahead=REFRESH_AHEAD):
            token = self.refresh()
        return {"Authorization": f"Bearer {token.access_token}"}

    def stale(self) -> bool:
        return self.current().refresh_due(ahead=REFRESH_AHEAD)


# ---------------------------------------------------------------------------- the refresh


def _set_lock_timeout() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '30s'")


def account_refresh_token(*, account_id: int, stale_access_token: str | None = None, force: bool = False,
                          ahead: timedelta = REFRESH_AHEAD) -> Token:
    """Refresh the account's token at most once per expiry, however many workers and hosts ask at once.

    The token row is locked (select_for_update: in PostgreSQL, across all hosts), re-read after the
    lock, and the call is skipped when another worker already refreshed (the access token differs
    from the `stale_access_token` the caller saw, or it is no longer about to expire). The new pair
    is committed before anyone can use it; a missing refresh token in the answer keeps the old one.
    A revoked grant puts the account into `needs_reauth` and raises TokenRevoked.
    """
    account = Account.objects.get(pk=account_id)
    # The sync-log rows wait for the end of the transaction: a rollback must not take them along.
    transport = Transport(account, defer_logs=True)
    failure: errors.AmoCRMError | None = None
    try:
        with transaction.atomic():
            _set_lock_timeout()
            token = Token.objects.select_for_update().select_related("account").filter(account_id=account_id).first()
            if token is None:  # never connected, or disconnected meanwhile: as unavailable as a paused one
                raise errors.AccountUnavailable("The account is not connected; it has no token to refresh.")
            transport.account = token.account
            if token.account.state != Account.State.CONNECTED:
                raise errors.AccountUnavailable("The account is not connected; its token is not refreshed.")
            if token.long_lived:
                return token  # long-lived tokens have no refresh token; the admin warns before expiry
            if stale_access_token is not None:
                if token.access_token != stale_access_token:
                    return token  # another worker refreshed while we waited for the lock
            elif not force and token.expires_at > timezone.now() + ahead:
                return token
            try:
                grant = oauth.refresh(transport, token.refresh_token)
            except errors.AuthError as exc:
                # Revoked or invalid client: the stored pair is dead. Record it (this commits) and stop.
                metrics.token_refresh("revoked")
                Account.objects.filter(pk=account_id).update(
                    state=Account.State.NEEDS_REAUTH, last_error=str(exc), last_error_at=timezone.now()
                )
                failure = exc
                return token
            except errors.AmoCRMError:
                metrics.token_refresh("failed")  # transient (network, 5xx, 429): the caller retries
                raise
            token.access_token = grant.access_token
            token.refresh_token = grant.refresh_token or token.refresh_token
            token.expires_at = grant.expires_at
            token.refreshed_at = timezone.now()
            token.refresh_count += 1
            token.save()
            metrics.token_refresh("ok")
            logger.info("amocrm token refreshed", extra={"account": account_id, "expires_at": grant.expires_at})
            return token
    finally:
        transport.flush_logs()
        if failure is not None:
            raise failure


def account_refresh_expiring_tokens(*, within: timedelta = timedelta(hours=1)) -> int:
    """Refresh every connected account's token that expires within `within` (keeps idle accounts alive)."""
    refreshed = 0
    due = Token.objects.filter(
        long_lived=False, account__state=Account.State.CONNECTED, expires_at__lte=timezone.now() + within
    ).values_list("account_id", flat=True)
    for account_id in due:
        try:
            account_refresh_token(account_id=account_id, ahead=within)
            refreshed += 1
        except errors.AmoCRMError as exc:
            logger.warning("scheduled token refresh failed", extra={"account": account_id, "error": str(exc)})
    return refreshed
