"""Which Redis errors are the server's and which are one subject's.

The breaker must open when the server cannot serve anyone (no connection, a
timeout, a refusal of every script) and never because one subject's keys hold
something the script cannot use: that server answered, and every other subject
would still be served. Classes come from redis-py; codes it has no class for are
read from the start of the message (Redis error replies begin with their code).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Faults"]

#: Error codes with which a server refuses every script, whatever the keys (the ones
#: redis-py has no class for keep the code at the start of the message).
_SERVER_CODES = frozenset(
    {
        *("BUSY", "CLUSTERDOWN", "LOADING", "MASTERDOWN", "MISCONF", "NOAUTH", "NOPERM"),
        *("NOREPLICAS", "NOSCRIPT", "OOM", "READONLY", "TRYAGAIN", "ASK", "MOVED"),
    }
)


class Faults:
    """How redis-py's exceptions divide into store failures and subject errors."""

    def __init__(self) -> None:
        import redis.exceptions as e

        self.response: type[Exception] = e.ResponseError
        self.noscript: type[Exception] = e.NoScriptError
        self._client_side = (e.DataError,)  # an argument redis-py cannot encode
        self._unreachable = (e.RedisError, e.RedisClusterException, OSError)
        self._server_wide = (
            *(e.ReadOnlyError, e.OutOfMemoryError, e.ClusterError, e.TryAgainError),
            *(e.NoPermissionError, e.NoScriptError, e.AskError, e.ExecAbortError),
        )

    def is_failure(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the server is unusable (so the breaker counts it)."""
        if isinstance(exc, self.response):
            return self.server_wide(exc)
        if isinstance(exc, self._client_side):
            return False
        return isinstance(exc, self._unreachable)

    def server_wide(self, exc: BaseException) -> bool:
        """Whether an error reply refuses every script (not this subject's keys)."""
        return isinstance(exc, self._server_wide) or str(exc).split(" ", 1)[0] in _SERVER_CODES

    def raise_server_wide(self, replies: list[Any]) -> None:
        """Raise the first server-wide error among a round trip's replies."""
        for reply in replies:
            if isinstance(reply, BaseException) and self.server_wide(reply):
                raise reply
