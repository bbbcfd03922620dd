"""Sentry: off without SENTRY_DSN; with it, an event leaves with no phone, email, token or URL secret in it."""

import json

import pytest

from monitoring.sentry import scrub
from tests.foundation.support import run_python

WEBHOOK_KEY = "Zx9_k2LmQpR7sT4uV6wY8aB1cD3eF5gH7jK9mN0pQ2r"
SECRETS = {
    "phone": "+7 (912) 345-67-89",
    "phone_e164": "+79123456789",
    "email": "ivan.petrov@example.com",
    "jwt": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
    "refresh": "def50200a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "client_secret": "SandboxSecretForLocalTestsOnly0123456789abcdef",
    "webhook_key": WEBHOOK_KEY,
    "bot_token": "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8",
    "code": "def5020089abcdef0123",
}

CAPTURE = """
import json, logging, os
import django
django.setup()
import sentry_sdk
from sentry_sdk.transport import Transport
from monitoring.sentry import init_sentry

secrets = json.loads(os.environ["SECRETS_JSON"])
captured = []

class Capture(Transport):
    def capture_envelope(self, envelope):
        captured.append(envelope.serialize().decode("utf-8", "replace"))

init_sentry(dsn="https://public@sentry.invalid/1", environment="test", release="amocrm-django@0.1.0",
            transport=Capture)
logging.getLogger("leads").warning("lead from %s <%s>", secrets["phone"], secrets["email"])


def push(lead_phone=secrets["phone_e164"], contact_email=secrets["email"], access_token=secrets["jwt"],
         refresh_token=secrets["refresh"], client_secret=secrets["client_secret"], telegram=secrets["bot_token"],
         hook=f"https://crm.example.com/api/webhooks/amocrm/{secrets['webhook_key']}/"):
    body = {"phone": lead_phone, "client_secret": client_secret, "nested": {"access_token": access_token}}
    raise ValueError(f"amoCRM refused {lead_phone} {contact_email} with Bearer {access_token} at {hook}"
                     f"?code={secrets['code']} via https://api.telegram.org/bot{telegram}/sendMessage {body}")


try:
    push()
except ValueError:
    sentry_sdk.capture_exception()
logging.getLogger("amocrm").error("refresh failed for %s (refresh_token=%s)", secrets["email"], secrets["refresh"])
sentry_sdk.flush()
print(json.dumps(captured))
"""


@pytest.mark.slow
def test_a_captured_event_carries_no_phone_email_token_or_url_secret(subprocess_env):
    env = {**subprocess_env, "SENTRY_DSN": "", "SECRETS_JSON": json.dumps(SECRETS)}
    result = run_python(CAPTURE, env, timeout=60)
    assert result.returncode == 0, result.stderr
    envelopes = json.loads(result.stdout.strip().splitlines()[-1])
    text = "\n".join(envelopes)
    assert len(envelopes) == 2, "the exception and the error log line are both reported"
    assert "ValueError" in text and "amoCRM refused" in text and "[phone]" in text and "[email]" in text
    assert '"release":"amocrm-django@0.1.0"' in text.replace(" ", "")
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} leaked into the Sentry event"
    assert "/api/webhooks/amocrm/\\u2026pQ2r/" in text, "the key cut to its last four characters"


@pytest.mark.slow
def test_sentry_starts_only_with_a_dsn_with_release_environment_and_beat_monitoring(subprocess_env):
    code = (
        "import django; django.setup(); import sentry_sdk, json\n"
        "client = sentry_sdk.get_client()\n"
        "celery = client.integrations.get('celery')\n"
        "print(json.dumps([client.is_active(), client.options.get('release'), client.options.get('environment'),\n"
        "                  client.options.get('send_default_pii'), getattr(celery, 'monitor_beat_tasks', None)]))"
    )
    off = run_python(code, {**subprocess_env, "SENTRY_DSN": ""})
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout.strip().splitlines()[-1])[0] is False
    on = run_python(code, {**subprocess_env, "SENTRY_DSN": "https://public@sentry.invalid/1",
                           "SENTRY_ENVIRONMENT": "staging"})
    assert on.returncode == 0, on.stderr
    assert json.loads(on.stdout.strip().splitlines()[-1]) == [True, "amocrm-django@0.1.0", "staging", False, True]


@pytest.mark.parametrize("text, expected", [
    ("call +7 912 345-67-89 now", "call [phone] now"),
    ("mail Ivan.P+x@mail.example.ru.", "mail [email]."),
    ("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer [token]"),
    ("deal 12345 in pipeline 777", "deal 12345 in pipeline 777"),
])
def test_scrub_keeps_ids_and_removes_personal_data(text, expected):
    assert scrub(text) == expected
