"""Container healthcheck for the web service: GET /healthz/ on the local gunicorn must answer 200.

Usage: python docker/healthcheck.py [PORT]   (default 8000, gunicorn's port in the container)
"""

import os
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

# Django answers 400 to a Host that is not in ALLOWED_HOSTS, so ask as the public site does;
# the forwarded proto stands for the TLS proxy (/healthz/ is exempt from the https redirect anyway).
host = urlsplit(os.environ.get("SITE_URL", "")).netloc or "localhost"
port = sys.argv[1] if len(sys.argv) > 1 else "8000"
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/healthz/",
    headers={"Host": host, "X-Forwarded-Proto": "https", "User-Agent": "docker-healthcheck"},
)
try:
    with urllib.request.urlopen(request, timeout=8) as response:  # noqa: S310 (fixed local http URL)
        sys.exit(0 if response.status == 200 else 1)
except urllib.error.HTTPError as exc:
    print(exc.read().decode(errors="replace"), file=sys.stderr)
    sys.exit(1)
except OSError as exc:
    print(f"web does not answer: {exc}", file=sys.stderr)
    sys.exit(1)
