"""Behaviour configuration: one frozen object shared by every store.

Windows are bucketed: each window is ``buckets`` buckets of ``window / buckets``
seconds, and a bucket counts while it overlaps the window (so a 1 h window with 60
buckets covers the current minute and the 59 before it). The defaults keep every
window at 1/60 granularity, the coarsest the features promise.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import attrs

from zerotrust.decision import StepUp
from zerotrust.errors import ZeroTrustError

__all__ = ["BehaviorConfig", "ConfiguredStore", "StoreErrorMode"]

MIN_BUCKETS = 60


class StoreErrorMode(enum.StrEnum):
    """What the PDP does when recent behaviour is unavailable.

    ``deny`` refuses, ``step_up`` asks for stronger authentication, ``evaluate`` lets
    the policies decide (they see ``behavior.available == false``).
    """

    DENY = "deny"
    STEP_UP = "step_up"
    EVALUATE = "evaluate"


def _positive(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ZeroTrustError(f"BehaviorConfig.{attribute.name} must be positive, not {value!r}")


def _whole_seconds(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ZeroTrustError(
            f"BehaviorConfig.{attribute.name} must be a whole number of seconds >= 1, not {value!r}"
        )


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class BehaviorConfig:
    """Window lengths, lookbacks, bounds, timeouts and the fault policy.

    Times are in seconds. The feature names keep their default spans (``requests_1h``
    is the ``hour_window``, whatever its length) so policies need not change.
    """

    minute_window: int = attrs.field(default=60, validator=_whole_seconds)
    hour_window: int = attrs.field(default=3600, validator=_whole_seconds)
    day_window: int = attrs.field(default=86_400, validator=_whole_seconds)
    #: Buckets per window (>= 60); each window's length must divide by it.
    buckets: int = attrs.field(default=60, validator=_whole_seconds)
    #: How far back a device, IP or country still counts as seen (hourly buckets).
    seen_lookback: int = attrs.field(default=30 * 86_400, validator=_whole_seconds)
    #: How far back the hourly baseline looks, excluding the current hour.
    baseline_lookback: int = attrs.field(default=14 * 86_400, validator=_whole_seconds)
    #: Memory store: subjects kept (least recently used evicted first).
    max_subjects: int = attrs.field(default=100_000, validator=_whole_seconds)
    #: Distinct resources remembered per subject for ``distinct_resources_1h`` (the
    #: feature saturates here; keep it above any threshold your policies use).
    max_resources: int = attrs.field(default=1_000, validator=_whole_seconds)
    #: Distinct devices, IPs and countries remembered per subject (each).
    max_seen: int = attrs.field(default=32, validator=_whole_seconds)
    #: A subject idle this long is forgotten (memory) or expires (Redis keys). At least
    #: the longest lookback, so nothing that still counts is dropped.
    ttl: int | None = attrs.field(default=None)
    #: What the PDP does when the store cannot be reached.
    on_store_error: StoreErrorMode = attrs.field(
        default=StoreErrorMode.DENY, converter=StoreErrorMode
    )
    #: The step-up asked for under ``on_store_error = step_up``.
    store_error_acr_values: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    store_error_max_age: int | None = None
    #: Redis: connect and read timeouts (seconds).
    connect_timeout: float = attrs.field(default=0.05, validator=_positive)
    timeout: float = attrs.field(default=0.05, validator=_positive)
    #: Redis: consecutive failures that open the circuit breaker, and how long it
    #: stays open (seconds, real time) before one trial request.
    breaker_failures: int = attrs.field(default=3, validator=_whole_seconds)
    breaker_reset: float = attrs.field(default=2.0, validator=_positive)
    #: Redis: key prefix (keys are ``{prefix}:{<subject>}:<part>``).
    key_prefix: str = "zt"
    #: Redis: send a decision's outcome with the next call (one round trip per
    #: decision) instead of on its own round trip.
    defer_outcomes: bool = True

    def __attrs_post_init__(self) -> None:
        if self.buckets < MIN_BUCKETS:
            raise ZeroTrustError(f"BehaviorConfig.buckets must be >= {MIN_BUCKETS}")
        for name in ("minute_window", "hour_window", "day_window"):
            if getattr(self, name) % self.buckets:
                raise ZeroTrustError(
                    f"BehaviorConfig.{name} ({getattr(self, name)} s) must divide into "
                    f"{self.buckets} whole-second buckets"
                )
        if self.ttl is not None and self.ttl < self.longest:
            raise ZeroTrustError(
                f"BehaviorConfig.ttl ({self.ttl} s) must be at least the longest lookback "
                f"({self.longest} s)"
            )
        if "{" in self.key_prefix or "}" in self.key_prefix:
            raise ZeroTrustError("BehaviorConfig.key_prefix must not contain braces")

    @property
    def longest(self) -> int:
        """The longest span any feature looks back (seconds)."""
        return max(
            self.day_window, self.seen_lookback, self.baseline_lookback + 3600, self.hour_window
        )

    @property
    def effective_ttl(self) -> int:
        return self.ttl if self.ttl is not None else self.longest

    def granularity(self, window: int) -> int:
        """Bucket length (seconds) of a window."""
        return window // self.buckets

    @property
    def seen_hours(self) -> int:
        return max(1, -(-self.seen_lookback // 3600))

    @property
    def baseline_hours(self) -> int:
        return max(1, -(-self.baseline_lookback // 3600))


class ConfiguredStore:
    """What every store exposes of its configuration, as the engine reads it."""

    _config: BehaviorConfig

    @property
    def config(self) -> BehaviorConfig:
        return self._config

    @property
    def on_store_error(self) -> StoreErrorMode:
        return self._config.on_store_error

    @property
    def store_error_step_up(self) -> StepUp:
        return StepUp(self._config.store_error_acr_values, self._config.store_error_max_age)
