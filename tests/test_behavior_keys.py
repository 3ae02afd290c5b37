"""Whose history is whose: every subject has its own, and both stores agree on it.

The Redis store names a subject's keys ``zt:{<type>:<id>}:<part>`` with ``%``, ``:``,
``{`` and ``}`` percent-escaped in each part, so the tag decodes back to exactly one
``(type, id)``. Tracked values (device, IP, country) are told apart by their text in
both stores. These run against a real redis-server, next to the memory store.
"""

from __future__ import annotations

import datetime
import json
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import RedisServer, admin_client
from strategies import subject_pairs, tracked_value_sequences

from zerotrust import (
    AccessRequest,
    BehaviorStoreError,
    MemoryBehaviorStore,
    PolicyDecisionPoint,
    RedisBehaviorStore,
)
from zerotrust.request import Action, Resource, Subject

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
ALLOW = "policy: p\nrules: [{id: ok, effect: allow}]\n"
SLOW = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _built(kind: str, ident: str, device: Any = None) -> AccessRequest:
    """A request built by hand, so any str (a lone surrogate too) can be the subject."""
    return AccessRequest(
        Subject(id=ident, type=kind),
        Action("read"),
        Resource("customer_record", "c-1"),
        device={} if device is None else {"id": device},
    )


def _subjects_of_keys(keys: list[bytes]) -> dict[tuple[str, str], set[bytes]]:
    """Decode every key back to its subject (the test's own decoder): the tag between
    the braces splits at its one ``:``, each side percent-decoded."""
    out: dict[tuple[str, str], set[bytes]] = {}
    for key in keys:
        prefix, rest = key.split(b"{", 1)
        tag, part = rest.split(b"}", 1)
        assert prefix == b"zt:" and part.startswith(b":") and tag.count(b":") == 1, key
        kind, ident = (
            unquote_to_bytes(p).decode("utf-8", "surrogatepass") for p in tag.split(b":")
        )
        out.setdefault((kind, ident), set()).add(key)
    return out


# --- the reported input -----------------------------------------------------------------------


def test_a_subject_type_with_a_colon_does_not_inherit_another_subjects_history(
    redis_server: RedisServer,
) -> None:
    """Before: ``user:alice`` / ``x`` and ``user`` / ``alice:x`` shared the Redis keys
    ``zt:{user:alice:x}:*``: after 50 requests by one, the other's first request saw
    ``requests_1m == 51`` on Redis (1 on the memory store)."""
    a = {"type": "user", "id": "alice:x"}
    b = {"type": "user:alice", "id": "x"}
    for store in (MemoryBehaviorStore(), RedisBehaviorStore.from_url(redis_server.url)):
        pdp = PolicyDecisionPoint.from_texts({"p.yaml": ALLOW}, clock=lambda: NOW, behavior=store)
        request = {"action": {"name": "read"}, "resource": {"type": "r", "id": "1"}}
        for _ in range(50):
            pdp.evaluate({**request, "subject": a})
        features = store.features(AccessRequest.from_mapping({**request, "subject": b}), NOW)
        assert features["requests_1m"] == 1, type(store).__name__
    keys = _subjects_of_keys(admin_client(redis_server).keys("*"))
    assert set(keys) == {("user", "alice:x"), ("user:alice", "x")}
    assert all(k.startswith(b"zt:{user:alice%3Ax}:") for k in keys["user", "alice:x"])
    assert all(k.startswith(b"zt:{user%3Aalice:x}:") for k in keys["user:alice", "x"])


def test_subjects_without_a_colon_keep_the_keys_they_had(redis_server: RedisServer) -> None:
    """Upgrading changes only the keys of subjects whose type or id holds ``:``."""
    store = RedisBehaviorStore.from_url(redis_server.url)
    store.features(_built("user", "we{ird}%id"), NOW)
    keys = admin_client(redis_server).keys("*")
    assert keys and all(k.startswith(b"zt:{user:we%7Bird%7D%25id}:") for k in keys)


def test_a_subject_that_is_not_a_string_is_refused_by_both_stores() -> None:
    """A request built by hand with an int id would otherwise be the id ``"1"`` on
    Redis and another subject in memory."""
    for store in (MemoryBehaviorStore(), RedisBehaviorStore.from_url("redis://127.0.0.1:1/0")):
        with pytest.raises(BehaviorStoreError, match="subject"):
            store.features(_built("user", 1), NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("known", "other"),
    [("", '""'), (-1, -2), (1, 2**61), (1, 1.0), ("1", 1.0), ([1], [1.0])],
    ids=["empty-vs-quotes", "hash-minus-one", "hash-2**61", "int-vs-float", "str-vs-float", "list"],
)
def test_a_new_device_that_collides_with_a_known_one_is_still_new(
    redis_server: RedisServer, known: Any, other: Any
) -> None:
    """Before: the memory store told devices apart by Python's hash (``hash(-1) ==
    hash(-2)``, ``hash(1) == hash(2**61) == hash(1.0)``) and Redis sent the empty
    string as ``'""'``: a stolen session on such a device did not look new."""
    for store in (MemoryBehaviorStore(), RedisBehaviorStore.from_url(redis_server.url)):
        subject = f"u-{type(store).__name__}"
        assert store.features(_built("user", subject, known), NOW)["new_device"] is False
        assert store.features(_built("user", subject, other), NOW)["new_device"] is True
        assert store.features(_built("user", subject, known), NOW)["new_device"] is False


# --- the families --------------------------------------------------------------------------


@SLOW
@given(pair=subject_pairs(), counts=st.tuples(st.integers(1, 3), st.integers(1, 3)))
def test_distinct_subjects_have_distinct_keys_and_the_same_features_on_both_stores(
    redis_server: RedisServer,
    pair: tuple[tuple[str, str], tuple[str, str]],
    counts: tuple[int, int],
) -> None:
    """Pairs of different ``(type, id)`` with ``:``, braces, ``%`` and what it escapes
    to, backslashes, NUL and lone surrogates, often the same text split at another
    ``:``: each subject's keys decode back to it alone, share one Cluster slot, and
    both stores give the same features at every step."""
    import redis.crc

    admin = admin_client(redis_server)
    admin.flushall()
    memory, shared = MemoryBehaviorStore(), RedisBehaviorStore.from_url(redis_server.url)
    a, b = pair
    for subject in [a] * counts[0] + [b] * counts[1] + [a]:
        request = _built(*subject)
        assert memory.features(request, NOW) == shared.features(request, NOW)
    assert shared.features(_built(*b), NOW)["requests_1m"] == counts[1] + 1
    keys = _subjects_of_keys(admin.keys("*"))
    assert set(keys) == {a, b}
    for subject_keys in keys.values():
        assert len({redis.crc.key_slot(k) for k in subject_keys}) == 1
    assert shared.stats().subject_errors == shared.stats().failures == 0
    shared.close()


def _text(value: Any) -> str:
    """A tracked value's identity as documented: a string as it is, else compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@SLOW
@given(devices=tracked_value_sequences())
def test_both_stores_tell_tracked_values_apart_by_their_text(
    redis_server: RedisServer, devices: list[Any]
) -> None:
    """Device ids whose hashes, text or JSON spellings are close: a device is new
    exactly when its text was not seen (and something was), on both stores alike."""
    admin_client(redis_server).flushall()
    memory, shared = MemoryBehaviorStore(), RedisBehaviorStore.from_url(redis_server.url)
    seen: set[str] = set()
    for device in devices:
        request = AccessRequest.from_mapping(
            {
                "subject": {"id": "u-1"},
                "action": {"name": "read"},
                "resource": {"type": "customer_record", "id": "c-1"},
                "device": {} if device is None else {"id": device},
            }
        )
        wanted = device is not None and bool(seen) and _text(device) not in seen
        assert memory.features(request, NOW)["new_device"] is wanted
        assert shared.features(request, NOW)["new_device"] is wanted
        if device is not None:
            seen.add(_text(device))
    shared.close()
