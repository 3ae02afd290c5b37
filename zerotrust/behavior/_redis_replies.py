"""Reading the subject script's reply and a group table's entries."""

from __future__ import annotations

import logging
from typing import Any

from zerotrust.behavior._redis_keys import shown, text_bytes
from zerotrust.behavior.peers import Figures, member_figures, parse_figures

__all__ = ["REPLY", "features", "members", "published"]

_log = logging.getLogger("zerotrust.behavior")
#: The script's reply: 23 integers (see ``_lua``).
REPLY = 23
_INTS = frozenset({int})


def members(reply: Any, key: bytes) -> dict[bytes, tuple[Figures, bytes]]:
    """A group table's entries as figures (with the raw value, to remove a stale one
    only if unchanged); entries someone else wrote in another form are left out."""
    out: dict[bytes, tuple[Figures, bytes]] = {}
    skipped = 0
    items = reply.items() if isinstance(reply, dict) else ()
    for name, value in items:
        raw = value if isinstance(value, bytes) else text_bytes(str(value))
        figures = parse_figures(raw)
        if figures is None:
            skipped += 1
        else:
            out[name if isinstance(name, bytes) else text_bytes(str(name))] = (figures, raw)
    if skipped:
        _log.warning("behaviour group %s: %d malformed members ignored", shown(key), skipped)
    return out


def published(reply: list[int], day: int) -> Figures | None:
    """The figures a script reply publishes for its subject on ``day`` (None: the
    subject leaves its groups, having no active day in the ``peer_days`` before)."""
    figures = member_figures(reply[19], reply[20], reply[21])
    return None if figures is None else (*figures, day)


def features(r: Any) -> dict[str, Any] | None:
    """The script's reply as features (without ``available``), or None when it is not
    the 23 integers it should be (an error reply, or fields someone else wrote)."""
    if type(r) is not list or len(r) != REPLY or set(map(type, r)) != _INTS:
        return None
    hours, days = r[12], r[21]
    return {
        "requests_1m": r[0],
        "requests_1h": r[1],
        "requests_24h": r[2],
        "records_1h": r[3],
        "records_24h": r[4],
        "distinct_resources_1h": r[5],
        "denied_1h": r[6],
        "step_ups_1h": r[7],
        "new_device": bool(r[8]),
        "new_ip": bool(r[9]),
        "new_country": bool(r[10]),
        "baseline_records_per_hour": r[11] / hours if hours > 0 else 0.0,
        "records_7d": r[13],
        "records_30d": r[14],
        "distinct_resources_24h": r[15],
        "distinct_resources_7d": r[16],
        "distinct_resources_30d": r[17],
        "active_days_30d": r[18],
        "baseline_records_per_day": r[19] / days if days > 0 else 0.0,
        "baseline_distinct_per_day": r[20] / days if days > 0 else 0.0,
    }
