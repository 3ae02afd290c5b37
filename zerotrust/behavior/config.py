"""Behaviour configuration: one frozen object shared by every store.

Windows are bucketed: each window is ``buckets`` buckets of ``window / buckets``
seconds, and a bucket counts while it overlaps the window (so a 1 h window with 60
buckets covers the current minute and the 59 before it). The defaults keep every
window at 1/60 granularity, the coarsest the features promise.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import attrs

from zerotrust.decision import StepUp, acr_values_problem, max_age_problem
from zerotrust.errors import BehaviorConfigError

__all__ = ["BehaviorConfig", "ConfiguredStore", "StoreErrorMode"]

MIN_BUCKETS = 60
#: The longest of the daily windows (``records_30d``, ``distinct_resources_30d``).
LONG_DAYS = 30
#: The largest number any field takes: Redis receives these as script arguments and
#: EXPIRE times, sockets as timeouts; 2**31 - 1 seconds is about 68 years.
LIMIT = 2**31 - 1
_SHOWN = 60


class StoreErrorMode(enum.StrEnum):
    """What the PDP does when recent behaviour is unavailable.

    ``deny`` refuses, ``step_up`` asks for stronger authentication, ``evaluate`` lets
    the policies decide (they see ``behavior.available == false``).
    """

    DENY = "deny"
    STEP_UP = "step_up"
    EVALUATE = "evaluate"


def _shown(value: Any) -> str:
    """A value for a message: told by its exact type, so no caller code runs."""
    if type(value) in (int, float, bool) or value is None:
        return repr(value)
    if type(value) is str:
        text = repr(value)
        return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
    # A class name may be a str subclass: read its data, not its methods.
    return f"a {str.__str__(type(value).__name__)}"


def _refuse(attribute: attrs.Attribute[Any], what: str, value: Any) -> BehaviorConfigError:
    return BehaviorConfigError(
        f"BehaviorConfig.{attribute.name} must be {what}, not {_shown(value)}"
    )


def _seconds(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A number of seconds > 0: an exact int or a finite float (timeouts, resets)."""
    if type(value) not in (int, float) or not (0 < value <= LIMIT and math.isfinite(value)):
        raise _refuse(attribute, f"a number of seconds above 0 and at most {LIMIT}", value)


def _whole_seconds(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not int or not 1 <= value <= LIMIT:
        raise _refuse(attribute, f"a whole number of seconds from 1 to {LIMIT}", value)


def _count(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not int or not 1 <= value <= LIMIT:
        raise _refuse(attribute, f"a whole number from 1 to {LIMIT}", value)


def _ttl(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _whole_seconds(instance, attribute, value)


def _mode(value: Any) -> StoreErrorMode:
    """``on_store_error`` from a member or its value; anything else is refused."""
    if type(value) is StoreErrorMode:
        return value
    if type(value) is str and value in StoreErrorMode._value2member_map_:
        return StoreErrorMode(value)
    choices = ", ".join(m.value for m in StoreErrorMode)
    raise BehaviorConfigError(
        f"BehaviorConfig.on_store_error must be one of {choices}, not {_shown(value)}"
    )


def _acr_values(values: Any) -> Any:
    """A list or tuple of strings as a tuple, duplicates dropped (first kept); anything
    else is left for the validator to refuse (a bare string is never split)."""
    if type(values) in (list, tuple) and all(type(v) is str for v in values):
        return tuple(dict.fromkeys(values))
    return values


def _check_acr_values(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    problem = acr_values_problem(value)
    if problem is not None:
        raise BehaviorConfigError(f"BehaviorConfig.{attribute.name} {problem}")


def _check_max_age(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    problem = max_age_problem(value)
    if problem is not None:
        raise BehaviorConfigError(f"BehaviorConfig.{attribute.name} {problem}")


def _key_prefix(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not str or not value or "{" in value or "}" in value:
        raise _refuse(attribute, "a non-empty string without braces", value)


#: A subject's groups come from at most this many property names per grouping.
MAX_GROUPING_NAMES = 4


def _groupings(value: Any) -> Any:
    """``peer_groups`` as a tuple of tuples of property names; a grouping given as one
    name is the tuple of that name. Anything else is left for the validator."""
    if type(value) not in (list, tuple):
        return value
    out: list[Any] = []
    for grouping in value:
        if type(grouping) is str:
            out.append((grouping,))
        elif type(grouping) in (list, tuple):
            out.append(tuple(grouping))
        else:
            out.append(grouping)
    return tuple(out)


def _check_groupings(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    what = (
        "a list of groupings, each a subject property name or a list of 1 to "
        f"{MAX_GROUPING_NAMES} property names (non-empty strings)"
    )
    if type(value) is not tuple:
        raise _refuse(attribute, what, value)
    for grouping in value:
        if (
            type(grouping) is not tuple
            or not 1 <= len(grouping) <= MAX_GROUPING_NAMES
            or not all(type(name) is str and name for name in grouping)
        ):
            raise _refuse(attribute, what, grouping)


def _peer_days(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not int or not 1 <= value <= 365:
        raise _refuse(attribute, "a whole number of days from 1 to 365", value)


def _min_peers(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not int or not 2 <= value <= LIMIT:
        raise _refuse(attribute, f"a whole number from 2 to {LIMIT}", value)


def _flag(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not bool:
        raise _refuse(attribute, "True or False", value)


@attrs.frozen
class BehaviorConfig:
    """Window lengths, lookbacks, bounds, timeouts and the fault policy.

    Times are in seconds. The feature names keep their default spans (``requests_1h``
    is the ``hour_window``, whatever its length) so policies need not change. Every
    field is checked here, by exact type (a bool is no number, a str no list) and
    range; :class:`~zerotrust.errors.BehaviorConfigError` names the first field that
    is wrong and what it must be.
    """

    minute_window: int = attrs.field(default=60, validator=_whole_seconds)
    hour_window: int = attrs.field(default=3600, validator=_whole_seconds)
    day_window: int = attrs.field(default=86_400, validator=_whole_seconds)
    #: Buckets per window (>= 60); each window's length must divide by it.
    buckets: int = attrs.field(default=60, validator=_count)
    #: How far back a device, IP or country still counts as seen (hourly buckets).
    seen_lookback: int = attrs.field(default=30 * 86_400, validator=_whole_seconds)
    #: How far back the hourly baseline looks, excluding the current hour.
    baseline_lookback: int = attrs.field(default=14 * 86_400, validator=_whole_seconds)
    #: Memory store: subjects kept (least recently used evicted first).
    max_subjects: int = attrs.field(default=100_000, validator=_count)
    #: Distinct resources remembered per subject for ``distinct_resources_1h`` (the
    #: feature saturates here; keep it above any threshold your policies use).
    max_resources: int = attrs.field(default=1_000, validator=_count)
    #: Distinct devices, IPs and countries remembered per subject (each).
    max_seen: int = attrs.field(default=32, validator=_count)
    #: A subject idle this long is forgotten (memory) or expires (Redis keys). At least
    #: the longest lookback, so nothing that still counts is dropped.
    ttl: int | None = attrs.field(default=None, validator=_ttl)
    #: What the PDP does when the store cannot be reached.
    on_store_error: StoreErrorMode = attrs.field(default=StoreErrorMode.DENY, converter=_mode)
    #: The step-up asked for under ``on_store_error = step_up``: a list of RFC 6749
    #: NQCHAR tokens (sent space-separated) and a max_age from 0 to 2**31 - 1 seconds.
    store_error_acr_values: tuple[str, ...] = attrs.field(
        default=(), converter=_acr_values, validator=_check_acr_values
    )
    store_error_max_age: int | None = attrs.field(default=None, validator=_check_max_age)
    #: Redis: connect and read timeouts (seconds).
    connect_timeout: float = attrs.field(default=0.05, validator=_seconds)
    timeout: float = attrs.field(default=0.05, validator=_seconds)
    #: Redis: consecutive failures that open the circuit breaker, and how long it
    #: stays open (seconds, real time) before one trial request.
    breaker_failures: int = attrs.field(default=3, validator=_count)
    breaker_reset: float = attrs.field(default=2.0, validator=_seconds)
    #: Redis: key prefix (keys are ``{prefix}:{<subject>}:<part>``).
    key_prefix: str = attrs.field(default="zt", validator=_key_prefix)
    #: Redis: send a decision's outcome with the next call (one round trip per
    #: decision) instead of on its own round trip.
    defer_outcomes: bool = attrs.field(default=True, validator=_flag)
    #: Peer groups: each grouping is a subject property name, or several combined
    #: (``("department", "roles")``); a list-valued property puts a subject in a
    #: group per value. Empty: no peer features.
    peer_groups: tuple[tuple[str, ...], ...] = attrs.field(
        default=(("department",),), converter=_groupings, validator=_check_groupings
    )
    #: Members with history (the subject excluded) a group needs for statistics.
    min_peers: int = attrs.field(default=5, validator=_min_peers)
    #: UTC days before today that members' figures and the per-day baselines cover.
    peer_days: int = attrs.field(default=28, validator=_peer_days)
    #: Seconds a process keeps a group's statistics before reading them again.
    peer_refresh: float = attrs.field(default=60.0, validator=_seconds)
    #: Resources remembered per subject for the 24 h, 7 d and 30 d distinct counts
    #: (oldest last seen forgotten first; the counts saturate here).
    max_distinct: int = attrs.field(default=5_000, validator=_count)
    #: The step-up built from the two fields above (built once, not per decision).
    store_error_step_up: StepUp = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.buckets < MIN_BUCKETS:
            raise BehaviorConfigError(
                f"BehaviorConfig.buckets must be at least {MIN_BUCKETS}, not {self.buckets}"
            )
        for name in ("minute_window", "hour_window", "day_window"):
            if getattr(self, name) % self.buckets:
                raise BehaviorConfigError(
                    f"BehaviorConfig.{name} ({getattr(self, name)} s) must divide into "
                    f"{self.buckets} whole-second buckets"
                )
        if self.ttl is not None and self.ttl < self.longest:
            raise BehaviorConfigError(
                f"BehaviorConfig.ttl ({self.ttl} s) must be at least the longest lookback "
                f"({self.longest} s)"
            )
        if self.effective_ttl > LIMIT:
            raise BehaviorConfigError(
                f"BehaviorConfig.baseline_lookback ({self.baseline_lookback} s) plus the "
                f"current hour must be at most {LIMIT} s"
            )
        step_up = StepUp(self.store_error_acr_values, self.store_error_max_age)
        object.__setattr__(self, "store_error_step_up", step_up)

    @property
    def longest(self) -> int:
        """The longest span any feature looks back (seconds)."""
        return max(
            self.day_window,
            self.seen_lookback,
            self.baseline_lookback + 3600,
            self.hour_window,
            LONG_DAYS * 86_400,
            (self.peer_days + 1) * 86_400,
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
        return self._config.store_error_step_up
