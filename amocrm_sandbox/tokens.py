"""OAuth credentials of one fake account: authorization codes, access/refresh token pairs, long-lived tokens."""

import base64
import json
import secrets
import uuid
from dataclasses import asdict, dataclass

# docs/amocrm.md#oauth: codes live 20 minutes, refresh tokens 3 months.
CODE_LIFETIME_SECONDS = 20 * 60
REFRESH_LIFETIME_SECONDS = 90 * 86400


@dataclass
class AuthorizationCode:
    client_id: str
    issued_at: float
    used: bool = False


@dataclass
class AccessToken:
    client_id: str
    expires_at: float
    long_lived: bool = False


@dataclass
class RefreshToken:
    client_id: str
    expires_at: float
    used: bool = False


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class TokenStore:
    """Issued credentials of one account. Callers hold the account lock."""

    def __init__(self) -> None:
        self.codes: dict[str, AuthorizationCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}

    def export(self) -> dict:
        """Every issued credential, as JSON-ready data (persistence.py)."""
        return {kind: {value: asdict(record) for value, record in records.items()}
                for kind, records in (("codes", self.codes), ("access", self.access), ("refresh", self.refresh))}

    def restore(self, saved: dict) -> None:
        self.codes.update({code: AuthorizationCode(**data) for code, data in saved.get("codes", {}).items()})
        self.access.update({token: AccessToken(**data) for token, data in saved.get("access", {}).items()})
        self.refresh.update({token: RefreshToken(**data) for token, data in saved.get("refresh", {}).items()})

    def issue_code(self, client_id: str, now: float) -> str:
        # Real codes are long opaque strings starting with "def502"; clients must not parse them.
        code = "def50200" + secrets.token_hex(96)
        self.codes[code] = AuthorizationCode(client_id=client_id, issued_at=now)
        return code

    def issue_pair(self, *, client_id: str, now: float, lifetime: int, claims: dict) -> TokenPair:
        access_token = _jwt_like({**claims, "aud": client_id, "iat": int(now), "nbf": int(now),
                                  "exp": int(now + lifetime)})
        refresh_token = "def50200" + secrets.token_hex(128)
        self.access[access_token] = AccessToken(client_id=client_id, expires_at=now + lifetime)
        self.refresh[refresh_token] = RefreshToken(client_id=client_id, expires_at=now + REFRESH_LIFETIME_SECONDS)
        return TokenPair(access_token=access_token, refresh_token=refresh_token, expires_in=lifetime)

    def issue_long_lived(self, *, client_id: str, now: float, lifetime: int, claims: dict) -> str:
        token = _jwt_like({**claims, "aud": client_id, "iat": int(now), "nbf": int(now), "exp": int(now + lifetime)})
        self.access[token] = AccessToken(client_id=client_id, expires_at=now + lifetime, long_lived=True)
        return token

    def valid_access(self, token: str | None, now: float) -> AccessToken | None:
        found = self.access.get(token) if token else None
        return found if found and found.expires_at > now else None

    def expire_access_tokens(self, now: float) -> int:
        """Age every short-lived access token to "expired now"; long-lived ones are left alone."""
        expired = 0
        for token in self.access.values():
            if not token.long_lived and token.expires_at > now:
                token.expires_at = now
                expired += 1
        return expired


def _jwt_like(claims: dict) -> str:
    """A JWT-shaped access token like amoCRM's (the signature is random: nobody may verify it)."""

    def encode(part: bytes) -> str:
        return base64.urlsafe_b64encode(part).rstrip(b"=").decode()

    header = encode(json.dumps({"typ": "JWT", "alg": "RS256", "jti": uuid.uuid4().hex}).encode())
    payload = encode(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{payload}.{encode(secrets.token_bytes(64))}"
