"""OAuth 2.0 with amoCRM: the consent URL with a signed state, and the token endpoint calls over the transport.

The token endpoint is on the account's own host and both calls send the client secret
(docs/amocrm.md#oauth). What to do with the tokens it returns is amocrm.tokens' business.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.core import signing
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext as _

from . import errors
from .hosts import consent_page_url, normalize_account_host
from .models import Account
from .transport import Transport

STATE_SALT = "amocrm.oauth.state"
STATE_MAX_AGE = 20 * 60  # the authorization code itself lives 20 minutes


class StateError(ValueError):
    """The callback's `state` is missing, forged, expired, already used or not this user's.

    The message is shown on the callback page, in the reader's language.
    """


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    refresh_token: str
    expires_at: object  # aware datetime


def make_state(*, account: Account, user_id: int) -> str:
    return signing.dumps({"a": account.pk, "u": user_id, "n": secrets.token_urlsafe(12)}, salt=STATE_SALT)


def read_state(state: str, *, user_id: int | None) -> int:
    """Verify the state and return the account pk it was issued for. Single use."""
    if not state:
        raise StateError(_("The request carries no state, so it cannot be tied to a connect attempt."))
    try:
        data = signing.loads(state, salt=STATE_SALT, max_age=STATE_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise StateError(_("The connect link expired (it is valid for 20 minutes).")) from exc
    except signing.BadSignature as exc:
        raise StateError(_("The state parameter is not one this site issued.")) from exc
    if user_id is None or data.get("u") != user_id:
        raise StateError(_("The connect attempt was started by another user or the session ended."))
    if not cache.add(f"amocrm:oauth-state:{data['n']}", 1, timeout=STATE_MAX_AGE + 60):
        raise StateError(_("This authorization was already used."))
    return int(data["a"])


def consent_url(*, account: Account, user_id: int, mode: str = "post_message") -> str:
    """The amoCRM/Kommo consent page for this account's integration, with a signed, expiring state."""
    origin = account.host or "https://www.amocrm.ru"
    try:
        origin = normalize_account_host(origin)
    except ValueError:
        origin = "https://www.amocrm.ru"
    query = urlencode({"client_id": account.client_id, "state": make_state(account=account, user_id=user_id),
                       "mode": mode})
    return f"{consent_page_url(origin)}?{query}"


def _token_request(transport: Transport, *, operation: str, fields: dict) -> TokenGrant:
    account = transport.account
    body = {
        "client_id": account.client_id,
        "client_secret": account.client_secret,
        "redirect_uri": account.redirect_uri,
        **fields,
    }
    try:
        response = transport.send("POST", "/oauth2/access_token", operation=operation, json_body=body)
    except errors.Unauthorized as exc:  # any 401 from the token endpoint
        raise _classify_401(exc) from exc
    except errors.PermanentError as exc:
        raise _classify_400(exc) from exc
    data = response.json()
    if not data.get("access_token"):
        raise errors.PermanentError("amoCRM's token endpoint answered without an access token.")
    return TokenGrant(
        access_token=data["access_token"],
        refresh_token=data.get("refresh_token") or "",
        expires_at=timezone.now() + timedelta(seconds=int(data.get("expires_in") or 86400)),
    )


def _payload_text(exc: errors.AmoCRMError) -> str:
    payload = exc.payload if isinstance(exc.payload, dict) else {}
    return " ".join(str(payload.get(k, "")) for k in ("hint", "title", "detail")).lower()


def _classify_401(exc: errors.AmoCRMError) -> errors.AuthError:
    text = _payload_text(exc)
    if "revoked" in text:
        return errors.TokenRevoked("The refresh token was already used or revoked: reconnect the account.", status=401,
                                   payload=exc.payload)
    if "client" in text:
        return errors.InvalidClient(
            "amoCRM does not recognise this integration: check the integration ID, secret key and redirect URI "
            "(a trailing slash matters).", status=401, payload=exc.payload)
    return errors.TokenRevoked(f"amoCRM refused the token request (401): {text.strip() or 'unauthorized'}",
                               status=401, payload=exc.payload)


def _classify_400(exc: errors.AmoCRMError) -> errors.AmoCRMError:
    if exc.status != 400:
        return exc
    text = _payload_text(exc)
    if "send request to account" in text:
        return errors.PermanentError("The token request went to the wrong host (not the account's).", status=400,
                                     payload=exc.payload)
    if "code" in text or "grant" in text or "authorization" in text:
        return errors.InvalidGrant(
            "The authorization code is expired, already used or not for this integration: start the connection "
            "again (codes live 20 minutes and work once).", status=400, payload=exc.payload)
    return errors.PermanentError(f"amoCRM refused the token request: {text.strip()}", status=400, payload=exc.payload)


def exchange_code(transport: Transport, code: str) -> TokenGrant:
    """POST /oauth2/access_token with grant_type=authorization_code, on the account host."""
    return _token_request(transport, operation="oauth.exchange_code",
                          fields={"grant_type": "authorization_code", "code": code})


def refresh(transport: Transport, refresh_token: str) -> TokenGrant:
    """POST /oauth2/access_token with grant_type=refresh_token. The old refresh token dies with this call."""
    return _token_request(transport, operation="oauth.refresh",
                          fields={"grant_type": "refresh_token", "refresh_token": refresh_token})
