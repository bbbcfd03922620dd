"""The sandbox's HTTP side: one server per fake account plus the www server, and the request pipeline.

A request to an account server goes through the same gates as on amoCRM, in this order: the
per-account request limit (429, then 403), injected faults, the route, the Bearer token, the
handler. The control API under `/_sandbox/` skips all of that.
"""

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from . import control_api, handlers, oauth
from .clock import SandboxClock
from .faults import DROP, ERROR, TIMEOUT_SLEEP
from .persistence import StateFile
from .state import (
    DEFAULT_BLOCK_THRESHOLD,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_RATE_LIMIT,
    DEFAULT_REDIRECT_URI,
    DEFAULT_TOKEN_LIFETIME,
    AccountConfig,
    AccountState,
    Integration,
    SandboxState,
    default_accounts,
)
from .validation import BatchRejected, ValidationFailed
from .wire import BadBody, Request, Response, bad_request, nginx_page, problem

logger = logging.getLogger("amocrm_sandbox")

CONTROL_PREFIX = "/_sandbox"
# How often an idle server checks for stop(); short, so that stopping takes milliseconds.
POLL_INTERVAL_SECONDS = 0.05


class Sandbox:
    """Fake amoCRM accounts on local ports, in memory; start(), use `.accounts[i].origin`, stop().

    Each account listens on its own port (port, port + 1, ...; free ports when port is 0) and the
    consent page lives on a separate www server (`www_origin`, port + number of accounts), so a
    token request sent to www is answered "Send request to account" as amoCRM does.

    With a `state_file` the accounts start from what it holds (`fresh`: empty, their ids still
    continuing upward) and every change is written to it before its answer goes out (persistence.py).
    """

    def __init__(self, accounts: Iterable[AccountConfig] | None = None, *, bind: str = "127.0.0.1", port: int = 0,
                 www_port: int | None = None, client_id: str = DEFAULT_CLIENT_ID,
                 client_secret: str = DEFAULT_CLIENT_SECRET, redirect_uri: str = DEFAULT_REDIRECT_URI,
                 integrations: Iterable[Integration] = (), token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
                 rate_limit: int = DEFAULT_RATE_LIMIT, block_threshold: int = DEFAULT_BLOCK_THRESHOLD,
                 clock: Callable[[], float] | None = None, seed: int = 0, state_file: Path | str | None = None,
                 fresh: bool = False) -> None:
        configs = list(accounts) if accounts is not None else default_accounts(1)
        if not configs:
            raise ValueError("A sandbox needs at least one account")
        if len({config.account_id for config in configs}) != len(configs):
            raise ValueError("Account ids must be unique")
        self.clock = clock if isinstance(clock, SandboxClock) else SandboxClock(clock)
        self.integration = Integration(client_id=client_id, client_secret=client_secret, redirect_uri=redirect_uri)
        self.state = SandboxState(
            accounts=[
                AccountState(config=config, position=position, clock=self.clock, rate_limit=rate_limit,
                             block_threshold=block_threshold, token_lifetime=token_lifetime, seed=seed + position)
                for position, config in enumerate(configs)
            ],
            integrations=[self.integration, *integrations],
            clock=self.clock,
        )
        self.state_file = StateFile(state_file) if state_file is not None else None
        if self.state_file is not None:
            self.state_file.load(self.state, fresh=fresh)
            self.state.on_change = lambda: self.state_file.save(self.state)
            self.state.on_change()  # from the start the file says what this run holds (empty, with --fresh)
        self._bind = bind
        self._ports = [config.port if config.port is not None else (port + position if port else 0)
                       for position, config in enumerate(configs)]
        self._www_port = www_port if www_port is not None else (port + len(configs) if port else 0)
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    @property
    def accounts(self) -> list[AccountState]:
        return self.state.accounts

    @property
    def www_origin(self) -> str:
        return self.state.www_origin

    def account(self, account_id: int) -> AccountState:
        found = self.state.account(account_id)
        if found is None:
            raise KeyError(account_id)
        return found

    def register_integration(self, *, client_id: str, client_secret: str, redirect_uri: str) -> Integration:
        return self.state.register_integration(Integration(client_id, client_secret, redirect_uri))

    @property
    def control(self):
        """A SandboxControl client for this sandbox (imported lazily: it needs `requests`)."""
        from .control import SandboxControl

        return SandboxControl(self.www_origin)

    def start(self) -> "Sandbox":
        """Bind every port and serve from daemon threads; returns at once."""
        if self._servers:
            return self
        try:
            for account, port in zip(self.accounts, self._ports, strict=True):
                server = _Server((self._bind, port), self.state, account)
                account.origin = server.origin
                self._servers.append(server)
            www = _Server((self._bind, self._www_port), self.state, None)
            self.state.www_origin = www.origin
            self._servers.append(www)
        except OSError:
            self._close_servers()
            raise
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_SECONDS},
                                      name=f"amocrm-sandbox-{server.server_port}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        # shutdown() waits for the server's next poll: ask all of them at once rather than one by one.
        stoppers = [threading.Thread(target=server.shutdown) for server in self._servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        self._close_servers()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads.clear()
        if self.state_file is not None:
            # What changed outside a request (a webhook destination disabled after failures) is kept too.
            self.state.on_change()

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until no webhook delivery is in flight on any account; False on timeout."""
        deadline = time.monotonic() + timeout
        return all(account.outbox.wait_idle(max(0.0, deadline - time.monotonic())) for account in self.accounts)

    def _close_servers(self) -> None:
        for server in self._servers:
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open many connections at once; the default backlog of 5 would refuse some.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxState, account: AccountState | None) -> None:
        self.sandbox = sandbox
        self.account = account  # None: the www server
        super().__init__(address, _RequestHandler)

    @property
    def origin(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients with a Session expect
    # Headers and body go out in two writes: without TCP_NODELAY every keep-alive answer would
    # wait ~40 ms for a delayed ACK, and the sandbox could never be pushed to 7 requests a second.
    disable_nagle_algorithm = True
    server_version = "nginx"
    sys_version = ""
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        target = urlsplit(self.path)
        request = Request(method=self.command, path=target.path, query=parse_qs(target.query, keep_blank_values=True),
                          headers=self.headers, body=body)
        response = dispatch(self.server.sandbox, self.server.account, request)
        try:
            self._write(response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting: nothing left to tell it

    def _write(self, response: Response) -> None:
        if response.drop_connection:
            self.close_connection = True
            return
        self.send_response(response.status)
        self.send_header("X-Request-Id", uuid.uuid4().hex)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        logger.debug("%s " + format, self.server.origin, *args)


def dispatch(sandbox: SandboxState, account: AccountState | None, request: Request) -> Response:
    """The answer for one request to the account's server (`account` None: the www server)."""
    try:
        if request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"):
            response = _control(sandbox, account, request)
        elif account is None:
            response = _www(sandbox, request)
        else:
            response = _account_request(sandbox, account, request)
    except Exception:
        logger.exception("Sandbox handler failed for %s %s", request.method, request.path)
        return problem(500, "Internal Server Error", "The sandbox failed to handle this request")
    if sandbox.on_change is not None and _may_change_state(request):
        try:
            sandbox.on_change()
        except OSError:
            logger.exception("The sandbox could not write its state file after %s %s", request.method, request.path)
    return response


def _may_change_state(request: Request) -> bool:
    """Every write, and the consent page (it issues an authorization code); other reads change nothing kept."""
    return request.method not in ("GET", "HEAD") or request.path == "/oauth"


def _control(sandbox: SandboxState, account: AccountState | None, request: Request) -> Response:
    handler, params, known = control_api.routes.match(request.method, request.path.rstrip("/") or "/")
    if handler is None:
        return _no_route(known)
    try:
        return handler(sandbox, account, request, **params)
    except (control_api.ControlError, BadBody, ValidationFailed) as exc:
        return control_api.control_error_response(exc)


def _www(sandbox: SandboxState, request: Request) -> Response:
    handler, _, known = oauth.routes.match(request.method, request.path)
    return handler(sandbox, None, request) if handler else _no_route(known)


def _account_request(sandbox: SandboxState, account: AccountState, request: Request) -> Response:
    now = account.clock()
    account.stats.record_request(request.path, now)
    with account.lock:
        refused = account.limiter.verdict(now)
    response = nginx_page(refused) if refused else _with_faults(account, request, lambda: _route(sandbox, account,
                                                                                                  request))
    account.stats.record_status(response.status)
    return response


def _route(sandbox: SandboxState, account: AccountState, request: Request) -> Response:
    handler, params, oauth_known = oauth.routes.match(request.method, request.path)
    if handler:
        return handler(sandbox, account, request)
    handler, params, api_known = handlers.routes.match(request.method, request.path)
    if handler is None:
        return _no_route(oauth_known or api_known)
    with account.lock:
        if account.tokens.valid_access(request.bearer_token, account.clock()) is None:
            return problem(401, "Unauthorized", "The access token is missing, unknown or expired")
        try:
            return handler(account, request, **params)
        except BadBody as exc:
            return bad_request(str(exc))
        except (BatchRejected, ValidationFailed) as exc:
            return exc.response()


def _with_faults(account: AccountState, request: Request, handle: Callable[[], Response]) -> Response:
    """Run `handle` under the account's fault plan: delay, fail before, or fail after a committed write."""
    with account.lock:
        plan = account.faults
        if not plan.applies_to(request.path):
            plan = None
        else:
            latency, before = plan.latency_ms / 1000, plan.before_handling()
            error_status, timeout_seconds = plan.error_status, plan.timeout_seconds
    if plan is None:
        return handle()
    if latency:
        time.sleep(latency)
    if before is not None:
        account.stats.count("faults_injected")
        if before == ERROR:
            return nginx_page(error_status)
        if before == TIMEOUT_SLEEP:
            time.sleep(timeout_seconds)
            return nginx_page(504)
        return Response(0, drop_connection=True)
    response = handle()
    with account.lock:
        after = plan.after_write(request.method, response.status)
    if after is None:
        return response
    account.stats.count("faults_injected")
    return Response(0, drop_connection=True) if after == DROP else nginx_page(502)


def _no_route(path_known: bool) -> Response:
    if path_known:
        return problem(405, "Method Not Allowed", "This method is not allowed for the path")
    return problem(404, "Not Found", "No such endpoint")
