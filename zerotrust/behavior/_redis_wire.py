"""Sending a round trip's commands: one script call straight on a pooled connection,
anything more through a pipeline.

A decision is one ``EVALSHA``. Sent through ``redis.Redis.execute_command`` it cost
the client about twice the CPU of the round trip itself (measured with redis-py 8:
27 µs of CPU for a ``PING`` against 12 µs to send a packed command and read its reply
on the same connection): the command passes through retry wrappers, observability
recorders and response callbacks, none of which this store uses (it sets no retries;
an ``EVALSHA`` has no callback). So a single script call borrows a connection from
the client's pool and does what ``execute_command`` does without them: send, read,
disconnect on anything but an error reply, give the connection back.

Clients whose class overrides ``execute_command`` (instrumentation, a cluster client,
a single-connection client) keep going through it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Wire"]

Command = tuple[str, list[Any]]


class Wire:
    """How one store talks to its client: :meth:`exchange` (sync) and
    :meth:`exchange_async` (``redis.asyncio``)."""

    def __init__(self, client: Any, response: type[Exception]) -> None:
        import redis

        self._client = client
        self._response = response
        plain = (
            isinstance(client, redis.Redis)
            and type(client).execute_command is redis.Redis.execute_command
            and client.connection is None
        )
        self._pool: Any = client.connection_pool if plain else None

    def exchange(self, commands: list[Command]) -> list[Any]:
        """The replies in order, an error reply as its exception; raises what is no
        reply (no connection, a timeout)."""
        if len(commands) == 1 and commands[0][0] == "evalsha":
            if self._pool is not None:
                return [self._evalsha(commands[0][1])]
            try:
                return [self._client.evalsha(*commands[0][1])]
            except self._response as exc:
                return [exc]
        pipe = self._client.pipeline(transaction=False)
        for name, args in commands:
            getattr(pipe, name)(*args)
        return list(pipe.execute(raise_on_error=False))

    def _evalsha(self, args: list[Any]) -> Any:
        pool = self._pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command(conn.pack_command("EVALSHA", *args))
            return conn.read_response()
        except self._response as exc:  # an error reply: the connection is in step
            return exc
        except BaseException:  # a timeout or a reset: the reply may still come
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    @staticmethod
    async def exchange_async(client: Any, commands: list[Command], response: Any) -> list[Any]:
        """:meth:`exchange` on a ``redis.asyncio`` client."""
        if len(commands) == 1 and commands[0][0] == "evalsha":
            try:
                return [await client.evalsha(*commands[0][1])]
            except response as exc:
                return [exc]
        pipe = client.pipeline(transaction=False)
        for name, args in commands:
            getattr(pipe, name)(*args)
        return list(await pipe.execute(raise_on_error=False))
