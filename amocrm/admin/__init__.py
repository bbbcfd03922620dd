"""The amoCRM admin: accounts, the cached metadata, the sync log and webhook deliveries (importing registers them)."""

from . import accounts, logs, metadata
from .helpers import badge, pretty_json, scrub

__all__ = ["accounts", "badge", "logs", "metadata", "pretty_json", "scrub"]
