"""The ``behavior`` section of the server configuration: the store ``zerotrust serve``
keeps behaviour in (``memory`` or a Redis URL) and every
:class:`~zerotrust.behavior.config.BehaviorConfig` field.

The fields are made from BehaviorConfig's own and checked by its own validators, so a
field added there is a key here, with the same meaning and the same refusals; each
refusal becomes one line naming ``behavior.<field>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import attrs
from pydantic import AfterValidator, Field, WithJsonSchema, create_model

from zerotrust.behavior.config import BehaviorConfig, StoreErrorMode
from zerotrust.errors import BehaviorConfigError
from zerotrust.server.configbase import Loc, Section, masked_url, problem

__all__ = ["REDIS_SCHEMES", "BehaviorSection", "BehaviorSectionBase"]

#: The Redis URLs ``behavior.store`` takes (``+cluster``: a Redis Cluster).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
_PREFIX = re.compile(r"BehaviorConfig\.(\w+) ")
_PYTHON_WORD = re.compile(r", not (True|False|None)\Z")
_YAML_WORDS = {"True": "true", "False": "false", "None": "null"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "int | None": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    "float": {"type": "number"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "StoreErrorMode": {"enum": [m.value for m in StoreErrorMode]},
    "tuple[str, ...]": _STRINGS,
    "tuple[tuple[str, ...], ...]": {
        "type": "array",
        "items": {"anyOf": [{"type": "string"}, _STRINGS]},
    },
}
_HELP = {
    "minute_window": "length of the minute window (seconds)",
    "hour_window": "length of the hour window (seconds)",
    "day_window": "length of the day window (seconds)",
    "buckets": "buckets per window (at least 60; each window divides by it)",
    "seen_lookback": "how far back a device, IP or country counts as seen (seconds)",
    "baseline_lookback": "how far back the hourly baseline looks (seconds)",
    "max_subjects": "memory store: subjects kept (least recently used evicted)",
    "max_resources": "distinct resources remembered per subject (distinct_resources_1h)",
    "max_seen": "distinct devices, IPs and countries remembered per subject",
    "ttl": "seconds an idle subject is kept (default: the longest lookback)",
    "on_store_error": "what the PDP does when the store cannot be reached",
    "store_error_acr_values": "acr_values asked for under on_store_error: step_up",
    "store_error_max_age": "max_age asked for under on_store_error: step_up (seconds)",
    "connect_timeout": "Redis: connect timeout (seconds)",
    "timeout": "Redis: read timeout (seconds)",
    "breaker_failures": "Redis: consecutive failures that open the circuit breaker",
    "breaker_reset": "Redis: seconds the breaker stays open before one trial request",
    "key_prefix": "Redis: key prefix (no braces)",
    "defer_outcomes": "Redis: send a decision's outcome with the next call",
    "peer_groups": "subject property names (or lists of them) forming peer groups",
    "min_peers": "members with history a peer group needs for statistics",
    "peer_days": "UTC days the peer figures and per-day baselines cover",
    "peer_refresh": "seconds a process keeps a group's statistics",
    "max_distinct": "resources remembered per subject for the 24 h, 7 d and 30 d counts",
}


def _store(value: str) -> str:
    if value != "memory" and not value.startswith(REDIS_SCHEMES):
        raise problem("must be memory or a " + ", ".join(REDIS_SCHEMES) + " URL")
    return value


class BehaviorSectionBase(Section):
    """``store``: ``memory`` (one per process) or a Redis URL, shared by every worker
    and replica; ``cluster``: the URL names a Redis Cluster (as ``redis+cluster://``)."""

    secret_keys: ClassVar[frozenset[str]] = frozenset({"store"})

    store: Annotated[str, AfterValidator(_store)] = Field(
        "memory", repr=False, description="memory, or a Redis URL shared by every replica"
    )
    cluster: bool = Field(False, description="the Redis URL names a Redis Cluster")

    @classmethod
    def _cross(cls, data: Any) -> list[tuple[Loc, str]]:
        store = data.get("store", "memory")
        if (
            data.get("cluster") is True
            and isinstance(store, str)
            and (store == "memory" or store.startswith("unix://"))
        ):
            return [(("cluster",), "needs a redis:// or rediss:// store")]
        return []

    def _after(self) -> list[tuple[Loc, str]]:
        try:
            self.behavior_config()
        except BehaviorConfigError as exc:
            return [_located(str(exc))]
        return []

    def __repr_args__(self) -> Any:
        yield "store", masked_url(self.store)
        yield from super().__repr_args__()

    @property
    def redis_url(self) -> str | None:
        """The store's Redis URL (``+cluster`` in its scheme under ``cluster``), or None."""
        if self.store == "memory":
            return None
        if self.cluster and "+cluster://" not in self.store:
            scheme, _, rest = self.store.partition("://")
            return f"{scheme}+cluster://{rest}"
        return self.store

    def behavior_config(self) -> BehaviorConfig:
        """The :class:`BehaviorConfig` of the fields given (the others its defaults)."""
        given = self.given()
        return BehaviorConfig(**{a.name: given[a.name] for a in _FIELDS if a.name in given})


_FIELDS = tuple(a for a in attrs.fields(BehaviorConfig) if a.init)


def _located(message: str) -> tuple[Loc, str]:
    """BehaviorConfig's message, as the key it names and what it says of it (a value
    it quotes as Python writes it, as YAML does: ``true``, not ``True``)."""
    message = _PYTHON_WORD.sub(lambda m: ", not " + _YAML_WORDS[m.group(1)], message)
    found = _PREFIX.match(message)
    if found is None:
        return (), message
    return (found.group(1),), message[found.end() :]


def _check(attribute: attrs.Attribute[Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            if callable(attribute.converter):
                value = attribute.converter(value)
            if attribute.validator is not None:
                attribute.validator(None, attribute, value)
        except BehaviorConfigError as exc:
            raise problem(_located(str(exc))[1]) from None
        return value

    return check


def _field(attribute: attrs.Attribute[Any]) -> Any:
    schema = dict(_SCHEMAS.get(str(attribute.type), {}))
    schema["description"] = _HELP.get(attribute.name, f"BehaviorConfig.{attribute.name}")
    kind = Annotated[Any, AfterValidator(_check(attribute)), WithJsonSchema(schema)]
    return (kind, Field(attribute.default, description=schema["description"]))


if TYPE_CHECKING:
    BehaviorSection = BehaviorSectionBase
else:
    BehaviorSection = create_model(
        "BehaviorSection",
        __base__=BehaviorSectionBase,
        __module__=__name__,
        __doc__=BehaviorSectionBase.__doc__,
        **{a.name: _field(a) for a in _FIELDS},
    )
