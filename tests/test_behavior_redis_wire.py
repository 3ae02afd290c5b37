"""The Redis store's wire: a lone script call on a pooled connection, kept in step
with its replies; the resource argument written out as JSON would write it."""

from __future__ import annotations

import datetime
import time
from typing import Any

import redis
from hypothesis import given
from hypothesis import strategies as st
from redis_server import RedisServer, admin_client

from zerotrust import AccessRequest, BehaviorConfig, RedisBehaviorStore
from zerotrust.behavior._redis_keys import arg, resource_arg
from zerotrust.behavior._redis_wire import Wire

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)


def _request(subject: str) -> AccessRequest:
    return AccessRequest.from_mapping(
        {
            "subject": {"id": subject},
            "action": {"name": "read"},
            "resource": {"type": "customer_record", "id": "c-1"},
        }
    )


@given(kind=st.text(), ident=st.text())
def test_the_resource_argument_is_the_json_of_the_pair(kind: str, ident: str) -> None:
    assert resource_arg(kind, ident) == arg([kind, ident], "resource")


@given(ident=st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.booleans()))
def test_a_resource_id_that_is_no_string_is_encoded_as_before(ident: Any) -> None:
    assert resource_arg("customer_record", ident) == arg(["customer_record", ident], "resource")


def test_a_plain_client_sends_the_script_call_itself(redis_server: RedisServer) -> None:
    plain = redis.Redis.from_url(redis_server.url)

    class Counting(redis.Redis):  # type: ignore[type-arg]
        def execute_command(self, *args: Any, **options: Any) -> Any:
            return super().execute_command(*args, **options)

    counting = Counting.from_url(redis_server.url)
    single = redis.Redis.from_url(redis_server.url, single_connection_client=True)
    error = redis.exceptions.ResponseError
    assert Wire(plain, error).direct
    assert not Wire(counting, error).direct  # its execute_command is called
    assert not Wire(single, error).direct
    for client in (plain, counting, single):
        client.close()


def test_a_reply_that_comes_too_late_is_never_read_as_the_next_ones(
    redis_server: RedisServer,
) -> None:
    """A call that times out drops its connection: the late reply (another subject's
    features) must not be taken for the next call's."""
    store = RedisBehaviorStore.from_url(redis_server.url, BehaviorConfig(timeout=0.05))
    assert store.features(_request("busy"), NOW)["requests_1h"] == 1
    for _ in range(3):
        assert store.features(_request("quiet"), NOW)["available"] is True
    admin = admin_client(redis_server)
    admin.execute_command("CLIENT", "PAUSE", "300", "WRITE")  # the script writes: it waits
    admin.close()
    assert store.features(_request("busy"), NOW) == {"available": False}  # timed out
    time.sleep(0.35)  # the pause is over: a late reply, if any, has been sent
    after = store.features(_request("quiet"), NOW)
    assert after["available"] is True
    assert after["requests_1h"] == 4  # quiet's own count, not busy's late reply
    assert store.features(_request("busy"), NOW)["requests_1h"] in {2, 3}
    store.close()


def test_either_packer_gives_the_same_features(redis_server: RedisServer) -> None:
    """hiredis packs the call when installed, redis-py otherwise: the same bytes on the
    wire, so the same counts."""
    stores = [RedisBehaviorStore.from_url(redis_server.url) for _ in range(2)]
    stores[1]._wire._pack = None  # redis-py's packer, as without hiredis
    seen = [[dict(store.features(_request("u-1"), NOW)) for store in stores] for _ in range(3)]
    assert [pair[1]["requests_1h"] for pair in seen] == [2, 4, 6]
    assert [pair[0]["requests_1h"] for pair in seen] == [1, 3, 5]
    for store in stores:
        store.close()
