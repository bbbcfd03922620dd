"""Faults on demand for one account: 5xx answers, latency, timeouts and "commit then fail" writes."""

import random
from dataclasses import dataclass, field, fields

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})

# What the client sees instead of an answer.
ERROR = "error"  # an nginx 5xx page, nothing done
TIMEOUT_SLEEP = "sleep"  # the answer comes after `timeout_seconds` as a 504, nothing done
DROP = "drop"  # the connection closes without a byte


class FaultSettingsError(ValueError):
    pass


@dataclass
class FaultPlan:
    """Probabilities and modes of injected faults, rolled with a seeded RNG so runs repeat exactly.

    Faults hit the API v4 endpoints; the OAuth endpoints only with `include_oauth`, and when
    `paths` is set only paths starting with one of its prefixes.
    """

    error_rate: float = 0.0
    error_status: int = 500
    latency_ms: int = 0
    timeout_rate: float = 0.0
    timeout_mode: str = TIMEOUT_SLEEP
    timeout_seconds: float = 10.0
    commit_then_fail_rate: float = 0.0
    commit_then_fail_mode: str = "502"
    include_oauth: bool = False
    paths: list[str] = field(default_factory=list)
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def configure(self, settings: dict) -> None:
        """Replace the plan with `settings` (unknown keys or bad values → FaultSettingsError)."""
        known = {item.name for item in fields(self) if not item.name.startswith("_")}
        unknown = set(settings) - known
        if unknown:
            raise FaultSettingsError(f"Unknown fault settings: {', '.join(sorted(unknown))}")
        fresh = FaultPlan()
        for name, value in settings.items():
            setattr(fresh, name, value)
        if fresh.commit_then_fail_mode == 502:
            fresh.commit_then_fail_mode = "502"
        fresh._validate()
        for item in fields(self):
            if not item.name.startswith("_"):
                setattr(self, item.name, getattr(fresh, item.name))
        self._rng.seed(self.seed)

    def as_dict(self) -> dict:
        return {item.name: getattr(self, item.name) for item in fields(self) if not item.name.startswith("_")}

    def applies_to(self, path: str) -> bool:
        is_oauth = path.startswith("/oauth")
        if not path.startswith("/api/") and not (is_oauth and self.include_oauth):
            return False
        return not self.paths or any(path.startswith(prefix) for prefix in self.paths)

    def before_handling(self) -> str | None:
        """ERROR, TIMEOUT_SLEEP, DROP or None, decided before the request is processed."""
        if self._roll(self.error_rate):
            return ERROR
        if self._roll(self.timeout_rate):
            return DROP if self.timeout_mode == DROP else TIMEOUT_SLEEP
        return None

    def after_write(self, method: str, status: int) -> str | None:
        """ERROR (a 502) or DROP for a write that has already been committed, else None."""
        if method not in WRITE_METHODS or not 200 <= status < 300 or not self._roll(self.commit_then_fail_rate):
            return None
        return DROP if self.commit_then_fail_mode == DROP else ERROR

    def _roll(self, rate: float) -> bool:
        # No draw at a zero rate, so enabling one fault does not shift the sequence of another.
        return rate > 0 and self._rng.random() < rate

    def _validate(self) -> None:
        for name in ("error_rate", "timeout_rate", "commit_then_fail_rate"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise FaultSettingsError(f"{name} must be a number between 0 and 1")
        if self.error_status not in (500, 502, 503, 504):
            raise FaultSettingsError("error_status must be one of 500, 502, 503, 504")
        if not isinstance(self.latency_ms, int | float) or self.latency_ms < 0:
            raise FaultSettingsError("latency_ms must be a non-negative number")
        if not isinstance(self.timeout_seconds, int | float) or self.timeout_seconds < 0:
            raise FaultSettingsError("timeout_seconds must be a non-negative number")
        if self.timeout_mode not in (TIMEOUT_SLEEP, DROP):
            raise FaultSettingsError(f"timeout_mode must be {TIMEOUT_SLEEP!r} or {DROP!r}")
        if self.commit_then_fail_mode not in ("502", DROP):
            raise FaultSettingsError(f"commit_then_fail_mode must be '502' or {DROP!r}")
        if not isinstance(self.include_oauth, bool) or not isinstance(self.seed, int):
            raise FaultSettingsError("include_oauth must be a boolean and seed an integer")
        if not isinstance(self.paths, list) or not all(isinstance(prefix, str) for prefix in self.paths):
            raise FaultSettingsError("paths must be a list of path prefixes")
