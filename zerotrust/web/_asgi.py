"""ASGI plumbing shared by the middleware and the framework integrations.

Package-internal: the request read from a scope, a refusal sent instead of the app,
and the ``send`` that applies obligations to a JSON response before releasing it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread

from zerotrust.decision import Decision
from zerotrust.web._pep import (
    BODY_DIGESTS,
    Gate,
    Identity,
    Prepared,
    Reply,
    Verdict,
    delegated_body,
    rewrite_json,
)
from zerotrust.web.http import HttpRequest, Target
from zerotrust.web.obligations import ObligationPlan

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "Rewriter",
    "Scope",
    "Send",
    "http_request",
    "identify",
    "judge",
    "refuse",
    "route_path",
    "send_reply",
    "settle_denial",
    "without_pathsend",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UVICORN_SANSIO = "uvicorn.protocols.websockets.websockets_sansio_impl"


def http_request(scope: Scope) -> HttpRequest:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    client = scope.get("client")
    websocket = scope["type"] == "websocket"
    return HttpRequest(
        method="GET" if websocket else scope["method"],
        path=route_path(scope),
        headers=headers,
        peer=client[0] if client else None,
        query_string=scope.get("query_string", b"").decode("latin-1"),
        websocket=websocket,
    )


def route_path(scope: Scope) -> str:
    """The path below ``root_path``: what the app's router matches (as Starlette does).

    ASGI puts the mount point in both ``root_path`` and ``path``; deciding on the full
    path while the app routes on the rest would make the route table differ by mount.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :]
    return path


def without_pathsend(scope: Scope) -> Scope:
    """A response that is rewritten must pass through ``send``, not the server's file path."""
    extensions = scope.get("extensions")
    if not extensions or "http.response.pathsend" not in extensions:
        return scope
    return {
        **scope,
        "extensions": {k: v for k, v in extensions.items() if k != "http.response.pathsend"},
    }


async def refuse(scope: Scope, send: Send, reply: Reply) -> None:
    """Answer instead of the app: an HTTP response, or a WebSocket handshake refused."""
    if scope["type"] == "http":
        await send_reply(send, reply)
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": reply.status,
                "headers": raw_headers(reply),
            }
        )
        await send({"type": "websocket.http.response.body", "body": reply.body})
        settle_denial(send)
        return
    # RFC 6455 section 7.4.1: 1008 is "policy violation"; a reason is at most 123 bytes.
    reason = reply.code or "refused"
    if reply.decision_id is not None:
        reason = f"{reason} (decision {reply.decision_id})"
    await send({"type": "websocket.close", "code": 1008, "reason": reason[:123]})


def settle_denial(send: Send) -> None:
    """Work around uvicorn's websockets-sansio protocol logging every denial at ERROR.

    That protocol (uvicorn's default WebSocket implementation from 0.50 on, at least
    through 0.54) writes a denial response and closes the connection, but leaves the
    handshake marked incomplete, so when the app returns it logs ``ASGI callable returned
    without completing handshake.`` at ERROR: one line per refused handshake, for any
    client to provoke. Our messages are what the ASGI denial-response extension asks
    for; uvicorn's wsproto and legacy websockets protocols log nothing. This marks the
    handshake complete as the pending upstream fix (Kludex/uvicorn#3138) and the wsproto
    protocol do, and only in the state that fix covers: the response written, the
    connection closing, the handshake still unmarked. The refusal is then already on the
    wire: nothing here can accept the connection or reach the app. Any other server, a
    fixed uvicorn, or a ``send`` wrapped by another middleware is left alone.
    """
    server: Any = getattr(send, "__self__", None)
    if type(server).__module__ != _UVICORN_SANSIO:
        return
    if (
        getattr(server, "initial_response", None) is not None
        and getattr(server, "close_sent", None) is True
        and getattr(server, "handshake_complete", None) is False
    ):
        server.handshake_complete = True


def raw_headers(reply: Reply) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]


async def send_reply(send: Send, reply: Reply) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": raw_headers(reply),
        }
    )
    await send({"type": "http.response.body", "body": reply.body})


class Rewriter:
    """A ``send`` that holds the response back, applies obligations to its JSON, then sends.

    Anything it cannot rewrite (not JSON, compressed, too large) is withheld with a
    500: releasing the unmasked original is never the fallback.
    """

    def __init__(self, send: Send, plan: ObligationPlan, gate: Gate, decision: Decision) -> None:
        self._send = send
        self._plan = plan
        self._gate = gate
        self._decision = decision
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False
        self._failed: str | None = None

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._start = message
            return
        if kind != "http.response.body" or self._done:
            if self._done and not self._failed:
                await self._send(message)  # trailers after a released body
            return
        body = message.get("body", b"")
        self._size += len(body)
        if self._size > self._gate.config.max_body_bytes:
            self._failed = self._failed or "response larger than max_body_bytes"
        elif not self._failed:
            self._chunks.append(body)
        if message.get("more_body", False):
            return
        self._done = True
        await self._release()

    async def finish(self) -> None:
        """Called after the app returns; a response never completed is not sent half-done."""
        if self._start is not None and not self._done:
            self._done = True
            self._failed = self._failed or "incomplete response"
            await self._release()

    async def _release(self) -> None:
        start = self._start
        if start is None:
            return
        headers = list(start.get("headers", ()))
        body = b"".join(self._chunks)
        if not self._failed:
            self._failed = delegated_body(
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
            )
        if not self._failed and body:
            rewritten = rewrite_json(
                int(start.get("status", 200)),
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
                body,
                self._plan,
            )
            if isinstance(rewritten, str):
                self._failed = rewritten
            else:
                if rewritten != body:  # digests of the unmasked body: an oracle for it
                    headers = [(k, v) for k, v in headers if k.lower().decode() not in BODY_DIGESTS]
                body = rewritten
        if self._failed:
            reply = self._gate.failed_obligation(self._decision, self._failed)
            await send_reply(self._send, reply)
            return
        if body:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})


async def judge(
    gate: Gate, http: HttpRequest, target: Target | None
) -> tuple[Verdict, Prepared] | Reply:
    """Authenticate, ask the PDP and judge, as the ASGI middleware does."""
    identity = await identify(gate, http)
    prepared = gate.prepare(http, target, identity)
    if isinstance(prepared, Reply):
        return prepared
    decision = await gate.decide_async(prepared)
    if isinstance(decision, Reply):
        return decision
    return gate.verdict(decision, prepared), prepared


async def identify(gate: Gate, http: HttpRequest) -> Identity:
    """The caller's identity; in a worker thread only when verifying may fetch keys."""
    if gate.would_block(http):
        return await anyio.to_thread.run_sync(gate.identify, http)
    return gate.identify(http)
