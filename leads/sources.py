"""Lead sources: the per-process cache the intake reads them through, their listed origins, the default source."""

import hmac
import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse

from amocrm.models import Account

from .models import LeadSource, hook_secret_digest

# How long a process trusts its cached copy; saving or deleting a source clears the cache at once
# in the process that did it (leads/receivers.py), the others catch up within this.
SOURCE_CACHE_SECONDS = 5

_source_cache: dict[str, tuple[float, LeadSource | None]] = {}
_origin_cache: dict[str, tuple[float, frozenset[str]]] = {}
_hook_cache: dict[str, tuple[float, LeadSource | None]] = {}


def lead_source_cache_clear() -> None:
    """Forget cached sources and origins (called whenever a LeadSource is saved or deleted)."""
    _source_cache.clear()
    _origin_cache.clear()
    _hook_cache.clear()


def lead_source_get_active(*, public_key: str) -> LeadSource | None:
    """The active source with this public key, cached for a few seconds per process (intake is hot)."""
    now = time.monotonic()
    hit = _source_cache.get(public_key)
    if hit is not None and hit[0] > now:
        return hit[1]
    source = LeadSource.objects.filter(public_key=public_key, is_active=True).first()
    if len(_source_cache) > 1000:  # junk keys must not grow the cache without bound
        _source_cache.clear()
    _source_cache[public_key] = (now + SOURCE_CACHE_SECONDS, source)
    return source


def lead_source_get_by_hook_secret(*, secret: str) -> LeadSource | None:
    """The active source whose hook URL carries this secret, cached like `lead_source_get_active`.

    Looked up by the secret's digest and then compared in constant time: neither the index lookup
    nor the comparison tells a guesser how much of a secret was right.
    """
    digest = hook_secret_digest(secret)
    now = time.monotonic()
    hit = _hook_cache.get(digest)
    if hit is None or hit[0] <= now:
        source = LeadSource.objects.filter(hook_secret_digest=digest, is_active=True).first()
        if len(_hook_cache) > 1000:
            _hook_cache.clear()
        hit = (now + SOURCE_CACHE_SECONDS, source)
        _hook_cache[digest] = hit
    source = hit[1]
    if source is None or not hmac.compare_digest(source.hook_secret.encode(), secret.encode()):
        return None
    return source


def lead_source_hook_url(source: LeadSource) -> str:
    """The source's form-builder hook URL, as a form builder is given it (SITE_URL + /api/leads/hook/<secret>/)."""
    return settings.SITE_URL + reverse("lead-hook", kwargs={"secret": source.hook_secret})


def normalize_origin(origin: str) -> str:
    """An origin as sources store and compare it: trimmed, no trailing slash, lower-case."""
    return (origin or "").strip().rstrip("/").lower()


def active_origins() -> frozenset[str]:
    """Every origin some active source lists, normalized; cached like the sources."""
    now = time.monotonic()
    hit = _origin_cache.get("all")
    if hit is None or hit[0] <= now:
        origins = frozenset(
            normalize_origin(item)
            for listed in LeadSource.objects.filter(is_active=True).values_list("allowed_origins", flat=True)
            for item in listed or []
        )
        hit = (now + SOURCE_CACHE_SECONDS, origins)
        _origin_cache["all"] = hit
    return hit[1]


def lead_source_ensure_default(*, account: Account) -> LeadSource:
    """The account's default source ("Website", deal mode), created once however often it is connected."""
    existing = LeadSource.objects.filter(account=account, is_default=True).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return LeadSource.objects.create(account=account, name="Website", is_default=True,
                                             mode=LeadSource.Mode.DEAL)
    except IntegrityError:  # a concurrent connect created it first
        return LeadSource.objects.get(account=account, is_default=True)
