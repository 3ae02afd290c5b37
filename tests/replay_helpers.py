"""Decision logs for the replay tests, written by the real PDP through the real sinks."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import IO, Any

from zerotrust import JsonLinesLog, PolicyDecisionPoint
from zerotrust.cel import default_backend
from zerotrust.policy.loader import load_path
from zerotrust.replay import ReplayReport, open_log, replay

__all__ = [
    "POLICIES",
    "ROOT",
    "TRAFFIC",
    "Clock",
    "changed_policies",
    "request",
    "run_replay",
    "write_log",
]

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)  # Monday, 10:00 Berlin


def request(
    subject: str = "u-anna",
    *,
    roles: tuple[str, ...] = ("agent",),
    department: str = "support",
    amr: tuple[str, ...] = ("pwd",),
    action: str = "read",
    owner: str = "support",
    sensitivity: float = 2,
    managed: bool = True,
    ip: str = "10.1.2.3",
    records: int = 1,
) -> dict[str, Any]:
    return {
        "subject": {
            "type": "user",
            "id": subject,
            "properties": {"department": department, "roles": list(roles), "amr": list(amr)},
        },
        "action": {"name": action},
        "resource": {
            "type": "customer_record",
            "id": f"c-{sensitivity}{records}",
            "properties": {"owner_dept": owner, "sensitivity": sensitivity},
        },
        "device": {"id": "d-1", "managed": managed, "compliant": managed},
        "context": {"ip": ip, "country": "DE", "records": records},
    }


class Clock:
    """Steps a minute a decision, so logged times differ (and reach the night)."""

    def __init__(self, start: datetime.datetime = START, step: float = 60.0) -> None:
        self.now, self.step = start, datetime.timedelta(seconds=step)

    def __call__(self) -> datetime.datetime:
        now, self.now = self.now, self.now + self.step
        return now


# A day's traffic for the shipped policies: own department, other department, a
# restricted record, an unmanaged laptop, a manager, an export, a bulk read.
TRAFFIC = [
    request(),
    request(sensitivity=1),
    request(owner="sales"),
    request(sensitivity=3),
    request(sensitivity=3, amr=("pwd", "mfa")),
    request(sensitivity=4, amr=("pwd", "mfa", "hwk")),
    request(managed=False, ip="203.0.113.9"),
    request("u-max", roles=("manager",)),
    request(action="export", records=500),
    request(action="update"),
    request(records=900),
]


def write_log(path: Path, traffic: list[dict[str, Any]] = TRAFFIC, **sink: Any) -> int:
    """Decide ``traffic`` with the shipped policies and a memory store into ``path``."""
    with JsonLinesLog(path, **sink) as log:
        pdp = PolicyDecisionPoint.from_path(POLICIES, clock=Clock(), decision_log=log)
        for item in traffic:
            pdp.evaluate(item)
    assert pdp.decision_log_failures == 0
    return len(traffic)


def changed_policies(tmp_path: Path) -> Path:
    """The shipped set with confidential MFA moved down to internal records (level 2)."""
    target = tmp_path / "changed"
    shutil.copytree(POLICIES, target)
    path = target / "customer-records.yaml"
    text = path.read_text()
    assert text.count("resource.properties.sensitivity >= 3") == 1
    path.write_text(
        text.replace("resource.properties.sensitivity >= 3", "resource.properties.sensitivity >= 2")
    )
    return target


def run_replay(policies: Path, log: Path | IO[bytes], examples: int = 10) -> ReplayReport:
    backend = default_backend()
    if not isinstance(log, Path):
        return replay(load_path(policies, backend), log, examples=examples, backend=backend)
    with open_log(log) as stream:
        return replay(load_path(policies, backend), stream, examples=examples, backend=backend)
