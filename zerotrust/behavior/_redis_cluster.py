"""Sending a round trip's commands to a Redis Cluster, through redis-py's cluster client.

A round trip's commands touch several slots (the request's subject, another subject's
deferred outcome, group tables): redis-py's cluster pipeline groups them by node and
sends one pipeline per node (the async client sends them concurrently, the sync one
writes to every node before reading any). Every script's keys share one hash tag,
so each script runs whole on one node; the batch as a whole is not atomic across
nodes, and does not need to be (each subject's and group's changes are their own).
No transaction is used (redis-py's cluster ``MULTI`` needs every key in one slot): as
on one server, the pipeline is a plain one.

What redis-py would do after a fault is not what this store needs, so its pipeline
runs with ``allow_redirections=False`` and the client with no retries:

* ``MOVED`` and ``ASK`` replies are refusals: the node did not run the command. Each
  is sent once more through ``execute_command``, which follows the redirection (and
  learns the new slot table) as a single command does, here at most three hops
  (``RedisClusterRequestTTL``, set by the store). ``TRYAGAIN`` (a slot mid-migration
  with the script's keys on both sides) is a refusal too, but asking again at once
  would only meet it again: it stays a store failure.
* A connection error or a timeout is *not* sent again (redis-py's sync pipeline
  would resend it one command at a time): the command may have run, and a second
  run would record the request or an outcome twice. It stays in the replies, and
  the store treats the round trip as a store failure (breaker, ``on_store_error``).
* A node that cannot be reached before anything is sent to it (no connection, a slot
  no master serves) raises: the round trip is a store failure as a whole.

A lone script call (a decision with nothing queued) skips the cluster pipeline: sync,
it goes on the direct wire (:mod:`zerotrust.behavior._redis_wire`) of the client
redis-py keeps for the subject's master; async, on that master node's own connection.
A ``MOVED`` or ``ASK`` reply is then followed as above.
"""

from __future__ import annotations

from typing import Any

from zerotrust.behavior._redis_wire import Wire

__all__ = ["ClusterWire"]

Command = tuple[str, list[Any]]


class ClusterWire:
    """How a store talks to ``redis.cluster.RedisCluster`` (sync) and
    ``redis.asyncio.cluster.RedisCluster`` (async): the same interface as ``Wire``."""

    def __init__(self, client: Any, response: type[Exception]) -> None:
        import redis.exceptions as e

        self._client = client
        self._response = response
        self._refused = (e.MovedError, e.AskError)
        self._wires: dict[str, tuple[Any, Wire]] = {}  # node name -> (its client, its wire)
        # a node lost, or a slot the table gives no master: read the table again
        self._lost = (e.ConnectionError, e.TimeoutError, e.SlotNotCoveredError)
        self._stale = False

    def exchange(self, commands: list[Command]) -> list[Any]:
        """The replies in order, an error reply (or a node that could not be reached
        after the pipeline was sent) as its exception; raises when nothing could be
        sent (no connection to a node, no slot table).

        After a node was lost (a connection error, a timeout; or a slot had no master
        in the table), the next call first reads the slot table again, so a replica
        promoted in its place is found: the breaker spaces these calls out while the
        cluster is failing."""
        if self._stale:
            self._client.nodes_manager.initialize()
            self._stale = False
        try:
            replies = self._exchange(commands)
        except self._lost:
            self._stale = True
            raise
        self._stale = any(isinstance(reply, self._lost) for reply in replies)
        return replies

    def _exchange(self, commands: list[Command]) -> list[Any]:
        from redis import cluster

        if len(commands) == 1 and commands[0][0] == "evalsha":
            return [self._alone(commands[0][1])]
        pipe = self._client.pipeline()
        command: Any = cluster.PipelineCommand  # untyped in redis-py
        stack = [
            command((name.upper(), *args), {"target_nodes": self._node(name, args)}, i)
            for i, (name, args) in enumerate(commands)
        ]
        replies = list(
            pipe.send_cluster_commands(stack, raise_on_error=False, allow_redirections=False)
        )
        for i, reply in enumerate(replies):
            if isinstance(reply, self._refused):
                name, args = commands[i]
                try:
                    replies[i] = self._client.execute_command(name.upper(), *args)
                except self._response as exc:
                    replies[i] = exc
        return replies

    def _alone(self, args: list[Any]) -> Any:
        """A lone script call (the usual decision) on the direct wire of its master's
        own client: the cluster pipeline's bookkeeping cost the client twice the CPU
        of the call (measured: 176 against 75 µs a decision)."""
        node = self._node("evalsha", args)
        client = self._client.get_redis_connection(node)
        known = self._wires.get(node.name)
        if known is None or known[0] is not client:  # a node replaced after a failover
            known = self._wires[node.name] = (client, Wire(client, self._response))
        reply = known[1].exchange([("evalsha", args)])[0]
        if isinstance(reply, self._refused):
            try:
                reply = self._client.execute_command("EVALSHA", *args)
            except self._response as exc:
                reply = exc
        return reply

    async def _alone_async(self, client: Any, args: list[Any], response: Any) -> Any:
        """A lone script call straight to its master's node: no pipeline (about 50 µs
        less client CPU a decision), and, unlike the client's ``execute_command``, no
        pause of its own after ``CLUSTERDOWN`` (redis-py sleeps 0.25 s there)."""
        await client.initialize()  # the slot table, once (a no-op afterwards)
        node = client.get_node_from_key(args[2])
        try:
            reply = await node.execute_command("EVALSHA", *args)
        except response as exc:
            reply = exc
        if isinstance(reply, self._refused):
            try:
                reply = await client.execute_command("EVALSHA", *args)
            except response as exc:
                reply = exc
        return reply

    def _node(self, name: str, args: list[Any]) -> Any:
        """The master serving the command's slot, by the client's slot table (its first
        key: a script's keys share one hash tag). Named here because redis-py's sync
        cluster pipeline otherwise asks a node ``COMMAND GETKEYS`` for every script
        call (its keys are "movable"): a second round trip per call, measured with
        redis-py 8.1. A stale table costs a ``MOVED``, which is followed below."""
        key = args[2] if name in ("eval", "evalsha") else args[0]
        return self._client.get_node_from_key(key)

    async def exchange_async(
        self, client: Any, commands: list[Command], response: Any
    ) -> list[Any]:
        """:meth:`exchange` on a ``redis.asyncio`` cluster client."""
        if self._stale:
            await client.nodes_manager.initialize()
            self._stale = False
        try:
            replies = await self._exchange_async(client, commands, response)
        except self._lost:
            self._stale = True
            raise
        self._stale = any(isinstance(reply, self._lost) for reply in replies)
        return replies

    async def _exchange_async(
        self, client: Any, commands: list[Command], response: Any
    ) -> list[Any]:
        if len(commands) == 1 and commands[0][0] == "evalsha":
            return [await self._alone_async(client, commands[0][1], response)]
        pipe = client.pipeline()
        for name, args in commands:  # by name: redis-py blocks pipe.evalsha() in a cluster
            pipe.execute_command(name.upper(), *args)
        replies = list(await pipe.execute(raise_on_error=False, allow_redirections=False))
        for i, reply in enumerate(replies):
            if isinstance(reply, self._refused):
                name, args = commands[i]
                try:
                    replies[i] = await client.execute_command(name.upper(), *args)
                except response as exc:
                    replies[i] = exc
        return replies
