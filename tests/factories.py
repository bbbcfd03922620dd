"""Test data builders: accounts connected to the mocked amoCRM host http://sandbox.test (a trusted test host)."""

from datetime import timedelta

from django.utils import timezone

from amocrm import ratelimit
from amocrm.models import Account, Token

HOST = "http://sandbox.test"
API = HOST + "/api/v4"
TOKEN_URL = HOST + "/oauth2/access_token"


def make_account(*, host: str = HOST, state: str = Account.State.CONNECTED, expires_in: int = 86400,
                 long_lived: bool = False, amocrm_account_id: int = 31000001, name: str = "Test account",
                 access_token: str = "access-1", refresh_token: str = "refresh-1",
                 client_secret: str = "client-secret-1", **fields) -> Account:
    account = Account.objects.create(
        name=name, host=host, client_id="client-id-1", client_secret=client_secret,
        redirect_uri="https://crm.example.com/amocrm/oauth/callback/", state=state, amocrm_account_id=amocrm_account_id,
        subdomain="sandbox", currency="RUB", **fields,
    )
    if state != Account.State.NOT_CONNECTED:
        Token.objects.create(
            account=account, access_token=access_token, refresh_token="" if long_lived else refresh_token,
            expires_at=timezone.now() + timedelta(seconds=expires_in), long_lived=long_lived,
        )
    return account


def rate_limiter_reset(account_id: int) -> None:
    """Forget the account's rate-limiter state (its request log and pause) in Redis, the tests' backend."""
    backend = ratelimit.backend()
    assert isinstance(backend, ratelimit._RedisBackend), "the tests run the limiter on Redis"
    backend.client.delete(*backend._keys(ratelimit.AccountRateLimiter(account_id).key))
