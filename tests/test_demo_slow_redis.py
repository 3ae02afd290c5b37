"""The patient insider against two PDP processes sharing one real Redis.

Every request of the low-and-slow replay goes to one of two worker processes, chosen at
random as a load balancer would; each has its own PDP with the shipped policies and a
``RedisBehaviorStore`` on the same server. The peer group, her volume and her
colleagues' are all shared through Redis, so she is caught as on one process.
"""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

from redis_server import RedisServer

from zerotrust.demo import default_policies
from zerotrust.demo_slow import SlowReport, Verdict, run_low_and_slow


def _worker(url: str, policies: str, conn: Connection) -> None:
    from zerotrust.behavior.redis import RedisBehaviorStore
    from zerotrust.demo_slow import local_decider

    store = RedisBehaviorStore.from_url(url)
    decide = local_decider(policies, store)
    while True:
        job = conn.recv()
        if job is None:
            store.close()
            conn.send("closed")
            return
        conn.send(decide(*job))


class Replicas:
    """Two worker processes; each request goes to one of them at random."""

    def __init__(self, url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.processes = []
        for _ in range(2):
            mine, theirs = context.Pipe()
            process = context.Process(target=_worker, args=(url, str(default_policies()), theirs))
            process.start()
            self.conns.append(mine)
            self.processes.append(process)
        self.rng = random.Random(5)
        self.used = [0, 0]

    def decide(self, request: Mapping[str, Any], at: Any) -> Verdict:
        n = self.rng.randrange(2)
        self.used[n] += 1
        self.conns[n].send((request, at))
        verdict: Verdict = self.conns[n].recv()
        return verdict

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
            assert conn.recv() == "closed"
        for process in self.processes:
            process.join(30)
            assert process.exitcode == 0


def test_two_processes_on_one_redis_catch_the_patient_insider(
    redis_server: RedisServer,
) -> None:
    replicas = Replicas(redis_server.url)
    try:
        report: SlowReport = run_low_and_slow(default_policies(), decide=replicas.decide)
    finally:
        replicas.close()
    assert min(replicas.used) > report.decisions // 3  # both replicas did real work
    assert report.flagged_after is not None and report.flagged_after < 500
    assert report.denied_after is not None and report.denied_after < 1_500
    assert report.colleague_denies == 0 and report.colleague_step_ups <= 5
