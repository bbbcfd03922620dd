"""Which origins may receive an integration's secrets: amoCRM/Kommo account hosts and configured test hosts."""

import re
from urllib.parse import urlsplit

from django.conf import settings

# amoCRM (Russia), old international amoCRM and Kommo: one platform, identical v4 API.
ACCOUNT_DOMAINS = ("amocrm.ru", "amocrm.com", "kommo.com")
# Hosts under those domains that are not accounts.
NON_ACCOUNT_LABELS = {"www", "api", "id", "oauth"}
# A subdomain label as amoCRM issues them: ASCII letters, digits and inner hyphens (LDH), 1-63 characters.
LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class UntrustedHost(ValueError):
    """The host is not an amoCRM/Kommo account host: no secret may be sent there."""


def _trusted_origins() -> dict[str, str]:
    """AMOCRM_TRUSTED_HOSTS, keyed by host[:port], as full origins."""
    origins = {}
    for raw in settings.AMOCRM_TRUSTED_HOSTS:
        parts = urlsplit(raw.strip() if "://" in raw else f"https://{raw.strip()}")
        if parts.netloc:
            origins[parts.netloc.lower()] = f"{parts.scheme}://{parts.netloc.lower()}"
    return origins


def normalize_account_host(value: str) -> str:
    """Return the account's origin (`https://example.amocrm.ru`) or raise UntrustedHost.

    Accepts a bare host as amoCRM sends it in the callback's `referer` (`example.amocrm.ru`),
    or a full origin. Paths, credentials, query strings and non-https schemes are refused,
    except for origins listed in AMOCRM_TRUSTED_HOSTS (sandboxes and tests, http allowed).
    """
    value = (value or "").strip()
    if not value:
        raise UntrustedHost("No account host was given.")
    # ASCII only, checked before anything parses or maps the text: Python's idna codec (IDNA 2003)
    # maps characters such as "⒈" to "1.", so a label that passed the checks below would name
    # another host by the time requests connects. amoCRM and Kommo subdomains are plain ASCII, so
    # nothing real is lost by refusing every other character instead of interpreting it.
    if not value.isascii():
        raise UntrustedHost(f"{value!r}: an account host has only ASCII letters, digits, dots and hyphens.")
    has_scheme = "://" in value
    parts = urlsplit(value if has_scheme else f"https://{value}")
    netloc = (parts.netloc or "").lower()
    if not netloc or parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise UntrustedHost(f"{value!r} is not a plain host name.")

    trusted = _trusted_origins()
    if netloc in trusted and (not has_scheme or f"{parts.scheme}://{netloc}" == trusted[netloc]):
        return trusted[netloc]

    if parts.scheme != "https":
        raise UntrustedHost(f"{value!r}: amoCRM account hosts are https only.")
    hostname = parts.hostname or ""
    if parts.port not in (None, 443):
        raise UntrustedHost(f"{value!r}: unexpected port.")
    for domain in ACCOUNT_DOMAINS:
        if hostname.endswith("." + domain):
            label = hostname[: -len(domain) - 1]
            if label and "." not in label and label not in NON_ACCOUNT_LABELS and _is_label(label):
                return f"https://{hostname}"
    raise UntrustedHost(
        f"{value!r} is not an amoCRM or Kommo account host (expected <subdomain>.amocrm.ru, "
        "<subdomain>.amocrm.com or <subdomain>.kommo.com)."
    )


def _is_label(label: str) -> bool:
    """An LDH label, and not an IDN in its ASCII form: "--" in the 3rd and 4th place is reserved for those."""
    return LDH_LABEL.fullmatch(label) is not None and label[2:4] != "--"


def is_trusted_test_host(origin: str) -> bool:
    return origin in _trusted_origins().values()


def consent_page_url(origin: str) -> str:
    """The OAuth consent page for the account's platform family (AMOCRM_OAUTH_URL overrides)."""
    if settings.AMOCRM_OAUTH_URL:
        return settings.AMOCRM_OAUTH_URL
    if is_trusted_test_host(origin):
        return f"{origin}/oauth"
    if origin.endswith(".amocrm.ru"):
        return "https://www.amocrm.ru/oauth"
    return "https://www.kommo.com/oauth"
