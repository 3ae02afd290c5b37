"""Decision logs for the report tests, written by a real PDP and JsonLinesLog.

``write_log`` replays a department of agents over some days and one insider who reads
in bulk on the last day, with a behaviour source that gives the features of the
issue-11 contract (``peers``, ``records_24h_vs_peers``) from its own daily counts, so
the logs carry peer figures whatever the shipped stores implement yet.
"""

from __future__ import annotations

import collections
import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zerotrust import AccessRequest, Decision, Effect, JsonLinesLog, PolicyDecisionPoint
from zerotrust.behavior.features import counted_records

START = datetime.datetime(2026, 3, 2, 8, 0, tzinfo=datetime.UTC)
AGENTS = tuple(f"u-{n:02d}" for n in range(8))
INSIDER = "u-07"
PEERS = {
    "group": "department=support",
    "members": 7,
    "records_per_day": {"median": 40.0, "p95": 52.0},
    "distinct_per_day": {"median": 5.0, "p95": 7.0},
}

POLICY = """
policy: reads
rules:
  - id: allow-agents
    effect: allow
    when: "'agent' in subject.properties.roles"
  - id: step-up-new-device
    effect: step_up
    reason: First request from this device
    when: "has(behavior.new_device) && behavior.new_device"
  - id: deny-far-above-peers
    effect: deny
    reason: Far more records than the peer group reads in a day
    when: "has(behavior.records_24h_vs_peers) && behavior.records_24h_vs_peers > 5.0"
"""


class PeerSource:
    """Today's records per subject (allowed only), a new device once, fixed peers."""

    def __init__(self, peers: Mapping[str, Any] | None = PEERS) -> None:
        self.peers = peers
        self.records: collections.Counter[tuple[str, datetime.date]] = collections.Counter()
        self.devices: dict[str, set[str]] = collections.defaultdict(set)

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        key = (str(request.subject.id), now.date())
        self.records[key] += counted_records(request.context)
        device = str(request.device.get("id"))
        known = self.devices[key[0]]
        new = bool(known) and device not in known
        known.add(device)
        out: dict[str, Any] = {
            "records_24h": self.records[key],
            "new_device": new,
            "new_country": False,
            "available": True,
        }
        if self.peers is not None:
            out["peers"] = dict(self.peers)
            median = self.peers["records_per_day"]["median"]
            out["records_24h_vs_peers"] = self.records[key] / median
        return out

    def record(self, request: AccessRequest, decision: Decision) -> None:
        if decision.effect is not Effect.ALLOW:  # a refused request read nothing
            key = (str(request.subject.id), decision.evaluated_at.date())
            self.records[key] -= counted_records(request.context)


def request(
    subject: str, resource: str, records: int, device: str = "d-1", kind: str = "customer_record"
) -> dict[str, Any]:
    return {
        "subject": {"id": subject, "properties": {"department": "support", "roles": ["agent"]}},
        "action": {"name": "read"},
        "resource": {"type": kind, "id": resource},
        "device": {"id": device},
        "context": {"records": records},
    }


def write_log(
    path: Path, *, days: int = 10, peers: Mapping[str, Any] | None = PEERS, bulk: int = 40
) -> PolicyDecisionPoint:
    """Every agent 5 lookups of 8 records a day on their own laptop; on the last day
    the insider reads ``bulk`` pages of 50 records from a new device."""
    now = [START]
    with JsonLinesLog(path) as log:
        pdp = PolicyDecisionPoint.from_texts(
            {"reads.yaml": POLICY},
            clock=lambda: now[0],
            behavior=PeerSource(peers),
            decision_log=log,
        )
        for day in range(days):
            for n, agent in enumerate(AGENTS):
                for lookup in range(5):
                    now[0] = START + datetime.timedelta(days=day, hours=lookup, minutes=n)
                    pdp.evaluate(request(agent, f"c-{day}-{n}-{lookup}", 8, f"d-{agent}"))
        for page in range(bulk):
            now[0] = START + datetime.timedelta(days=days - 1, hours=20, seconds=2 * page)
            pdp.evaluate(request(INSIDER, f"c-bulk-{page}", 50, "d-private"))
    return pdp
