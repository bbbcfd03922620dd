"""Web sites for the browser tests and bench/tracker.py on one local server, told apart by host name (shop, ads, CRM).

Chromium resolves every *.test name to 127.0.0.1 (see chromium.ARGS), so `http://www.shop.test:<port>/` and
`http://ads.test:<port>/` are different sites with cookies of their own, served by the same server. Pages are
added by the test; every POST is recorded and answered with a small thank-you page.
"""

import datetime
import ipaddress
import ssl
import tempfile
import threading
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

ROOT = Path(__file__).resolve().parents[1]
TRACKER_JS = ROOT / "leads" / "static" / "amocrm" / "tracker.js"
TRACKER_PATH = "/static/amocrm/tracker.js"


@dataclass
class Post:
    host: str
    path: str
    body: str

    def form(self) -> dict[str, str]:
        """The posted form as a dict; a name posted twice is an error (a field the tracker duplicated)."""
        pairs = parse_qsl(self.body, keep_blank_values=True)
        names = [name for name, _ in pairs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        assert not duplicates, f"posted more than once: {duplicates}"
        return dict(pairs)


class Sites:
    """A threaded HTTP(S) server on a free port of 127.0.0.1 that serves pages by (host, path)."""

    def __init__(self, *, tls: bool = False) -> None:
        self.pages: dict[tuple[str, str], str] = {}
        self.posts: list[Post] = []
        self.scheme = "https" if tls else "http"
        sites = self

        class Handler(BaseHTTPRequestHandler):
            def _host(self) -> str:
                return (self.headers.get("Host") or "").rsplit(":", 1)[0]

            def do_GET(self):  # noqa: N802 — http.server's name
                path = urlsplit(self.path).path
                if path == TRACKER_PATH:  # read on every request: the test always gets the current file
                    self._answer(200, TRACKER_JS.read_bytes(), "text/javascript; charset=utf-8")
                elif (self._host(), path) in sites.pages:
                    self._answer(200, sites.pages[self._host(), path].encode(), "text/html; charset=utf-8")
                else:
                    self._answer(404, b"not found", "text/plain")

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                sites.posts.append(Post(self._host(), urlsplit(self.path).path, body))
                rows = "".join(f"<tr><td>{escape(name)}</td><td>{escape(value)}</td></tr>"
                               for name, value in parse_qsl(body, keep_blank_values=True))
                page = f'<!doctype html><meta charset="utf-8"><title>Thanks</title><h1>Sent</h1><table>{rows}</table>'
                self._answer(200, page.encode(), "text/html; charset=utf-8")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # noqa: A002 — quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            self.server.socket = _tls_context().wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-sites", daemon=True)

    def __enter__(self) -> "Sites":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def url(self, host: str, path: str = "/") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def add(self, host: str, path: str, html: str) -> str:
        """Serve `html` at host+path; returns the page's URL."""
        self.pages[host, path] = html
        return self.url(host, path)

    def reset(self) -> None:
        self.pages.clear()
        self.posts.clear()


def _tls_context() -> ssl.SSLContext:
    """A self-signed certificate for *.test (the browser context is told to accept it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.test")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(n) for n in ("shop.test", "*.shop.test", "crm.test", "ads.test")]
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([*names, x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context.load_cert_chain(cert_file, key_file)
    return context
