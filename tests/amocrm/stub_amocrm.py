"""A minimal real-HTTP amoCRM for tests that span processes (token race, limiter): counts what it sees."""

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubAmo:
    """Single-use refresh tokens, bearer checks on /api/v4/account, arrival times of every request."""

    def __init__(self, *, refresh_delay: float = 0.3):
        self.lock = threading.Lock()
        self.refresh_delay = refresh_delay
        self.access_tokens = {"access-1"}
        self.refresh_token = "refresh-1"
        self.token_requests = 0
        self.arrivals: list[float] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, payload):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                with stub.lock:
                    stub.arrivals.append(time.time())
                data = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path != "/oauth2/access_token":
                    return self._answer(404, {"title": "Not found"})
                with stub.lock:
                    stub.token_requests += 1
                    if data.get("refresh_token") != stub.refresh_token:
                        return self._answer(401, {"hint": "Token has been revoked", "title": "Unauthorized",
                                                  "status": 401})
                    stub.refresh_token = secrets.token_hex(8)
                    access = secrets.token_hex(8)
                    stub.access_tokens.add(access)
                    refresh = stub.refresh_token
                # Slow like a real token endpoint, so racing workers really overlap.
                time.sleep(stub.refresh_delay)
                self._answer(200, {"token_type": "Bearer", "expires_in": 86400, "access_token": access,
                                   "refresh_token": refresh})

            def do_GET(self):
                with stub.lock:
                    stub.arrivals.append(time.time())
                    valid = self.headers.get("Authorization", "").removeprefix("Bearer ") in stub.access_tokens
                if not valid:
                    return self._answer(401, {"title": "Unauthorized", "status": 401})
                self._answer(200, {"id": 31000001, "name": "Stub", "subdomain": "stub", "currency": "RUB"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def peak_in_window(self, window: float = 1.0) -> int:
        times = sorted(self.arrivals)
        peak, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window:
                start += 1
            peak = max(peak, end - start + 1)
        return peak
