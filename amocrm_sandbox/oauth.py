"""amoCRM's OAuth 2.0 as the sandbox serves it: the consent redirect, the token endpoint, the subdomain lookup.

Behaviour and error hints follow docs/amocrm.md#oauth; amoCRM runs league/oauth2-server, whose hint
texts ("Token has been revoked", "Authorization code has expired", ...) clients match on.
"""

import hmac
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .state import AccountState, SandboxState
from .tokens import CODE_LIFETIME_SECONDS
from .wire import BadBody, Request, Response, Router, html_page, plain_json, problem, redirect

OAUTH_PROBLEM_TYPE = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"

routes = Router()


def _oauth_problem(status: int, hint: str, *, title: str = "Invalid request",
                   detail: str = "The request is missing a required parameter or a parameter is invalid") -> Response:
    return problem(status, title, detail, type_=OAUTH_PROBLEM_TYPE, hint=hint)


def _invalid_client() -> Response:
    return _oauth_problem(401, "Client authentication failed", title="invalid client",
                          detail="Client authentication failed: check client_id, client_secret and redirect_uri")


@routes.route("GET", "/oauth")
def consent(sandbox: SandboxState, account: AccountState | None, request: Request) -> Response:
    """The consent page, already "clicked": 302 to the integration's redirect URI with code, state, referer."""
    integration = sandbox.integration(request.arg("client_id"))
    if integration is None:
        return html_page(400, "Integration not found", "No integration with this client_id is registered.")
    chosen = request.arg("sandbox_account")
    if chosen is not None:
        account = sandbox.account(int(chosen)) if chosen.isdigit() else None
        if account is None:
            return html_page(400, "Account not found", f"No sandbox account {chosen}.")
    account = account or sandbox.accounts[0]
    answer: dict[str, str] = {}
    if request.arg("sandbox_deny") in ("1", "true") or sandbox.deny_consent:
        answer["error"] = "access_denied"
    else:
        with account.lock:
            answer["code"] = account.tokens.issue_code(integration.client_id, account.clock())
        answer["referer"] = account.host
    if request.arg("state") is not None:
        answer["state"] = request.arg("state")
    # amoCRM adds parameters of its own; a correct callback ignores them.
    answer["client_id"] = integration.client_id
    return redirect(_with_query(integration.redirect_uri, answer))


@routes.route("POST", "/oauth2/access_token")
def access_token(sandbox: SandboxState, account: AccountState | None, request: Request) -> Response:
    if account is None:
        return _oauth_problem(400, "Send request to account",
                              detail="The token endpoint is on the account host, not on www")
    try:
        body = request.form_or_json()
    except BadBody:
        return _oauth_problem(400, "Check the request body: JSON or form-encoded parameters are expected")
    grant_type = body.get("grant_type")
    if grant_type not in ("authorization_code", "refresh_token"):
        return _oauth_problem(400, "Check that all required parameters have been provided",
                              title="Unsupported grant type",
                              detail="The authorization grant type is not supported by the authorization server")
    integration = sandbox.integration(body.get("client_id"))
    if (integration is None
            or not hmac.compare_digest(str(body.get("client_secret") or ""), integration.client_secret)
            or body.get("redirect_uri") != integration.redirect_uri):
        return _invalid_client()
    with account.lock:
        if grant_type == "authorization_code":
            return _exchange_code(account, integration.client_id, body.get("code"))
        answer = _refresh(account, integration.client_id, body.get("refresh_token"))
        account.stats.count("token_refreshes" if answer.status == 200 else "token_refresh_failures")
        return answer


def _exchange_code(account: AccountState, client_id: str, code: object) -> Response:
    if not isinstance(code, str) or not code:
        return _oauth_problem(400, "Check the `code` parameter")
    record = account.tokens.codes.get(code)
    now = account.clock()
    if record is None:
        return _oauth_problem(400, "Cannot decrypt the authorization code")
    if record.client_id != client_id:
        return _oauth_problem(400, "Authorization code was not issued to this client")
    if record.used:
        return _oauth_problem(400, "Authorization code has been revoked")
    if now - record.issued_at > CODE_LIFETIME_SECONDS:
        return _oauth_problem(400, "Authorization code has expired")
    record.used = True
    account.stats.count("code_exchanges")
    return _token_answer(account, client_id, now)


def _refresh(account: AccountState, client_id: str, refresh_token: object) -> Response:
    """Single use: the old refresh token dies, the old access token lives on until it expires."""
    if not isinstance(refresh_token, str) or not refresh_token:
        return _oauth_problem(400, "Check the `refresh_token` parameter")
    record = account.tokens.refresh.get(refresh_token)
    now = account.clock()
    if record is None:
        return _oauth_problem(401, "Cannot decrypt the refresh token")
    if record.client_id != client_id:
        return _oauth_problem(401, "Token is not linked to client")
    if record.used:
        return _oauth_problem(401, "Token has been revoked")
    if record.expires_at <= now:
        return _oauth_problem(401, "Token has expired")
    record.used = True
    return _token_answer(account, client_id, now)


def _token_answer(account: AccountState, client_id: str, now: float) -> Response:
    pair = account.tokens.issue_pair(client_id=client_id, now=now, lifetime=account.token_lifetime,
                                     claims=account.token_claims())
    return plain_json({"token_type": "Bearer", "expires_in": pair.expires_in, "access_token": pair.access_token,
                       "refresh_token": pair.refresh_token})


@routes.route("GET", "/oauth2/account/current/subdomain")
def current_subdomain(sandbox: SandboxState, account: AccountState | None, request: Request) -> Response:
    """Where an account lives now, found by a live refresh token (the SDK's answer to a renamed account)."""
    refresh_token = request.headers.get("X-Refresh-Token") or ""
    for candidate in sandbox.accounts:
        with candidate.lock:
            record = candidate.tokens.refresh.get(refresh_token)
            if record is None:
                continue
            if record.used or record.expires_at <= candidate.clock():
                return _oauth_problem(401, "Token has been revoked")
            return plain_json({"id": candidate.account_id, "subdomain": candidate.subdomain,
                               "domain": candidate.host, "top_level_domain": "local"})
    return _oauth_problem(401, "Cannot decrypt the refresh token")


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
