"""WSGI middleware (Flask, Django, any PEP 3333 app): the policy enforcement point.

::

    app.wsgi_app = ZeroTrustMiddleware(app.wsgi_app, pdp, resolve=ROUTES, config=config)

The decision is in ``environ["zerotrust.decision"]`` (Flask: ``request.environ``,
Django: ``request.META``); :func:`decision_of` fetches it from any of those.

With ``trusted_proxies``, the server or the proxy must drop header names with an
underscore: the environ has one key for ``X-Forwarded-For`` and ``X_Forwarded_For``, so
a server that keeps both hands the app a value partly chosen by the client, and nothing
in the environ shows it (docs/integration.md, "Trusting proxies", lists who drops them).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from types import TracebackType
from typing import Any

from zerotrust.decision import Decision
from zerotrust.engine import DecisionPoint
from zerotrust.request import AccessRequest
from zerotrust.web._pep import (
    BODY_DIGESTS,
    CURRENT_REQUEST,
    Gate,
    Reply,
    delegated_body,
    rewrite_json,
)
from zerotrust.web._wsgi import http_request
from zerotrust.web.errors import NoDecisionError, WebConfigError
from zerotrust.web.http import (
    Resolver,
    WebConfig,
    checked_target,
)
from zerotrust.web.obligations import ObligationPlan

__all__ = [
    "DECISION_KEY",
    "REQUEST_KEY",
    "ZeroTrustMiddleware",
    "access_request_of",
    "decision_of",
]

DECISION_KEY = "zerotrust.decision"
REQUEST_KEY = "zerotrust.request"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ZeroTrustMiddleware:
    """Asks the PDP about every request and enforces the answer (see the ASGI twin).

    ``resolve`` works as in ASGI but must be synchronous here.
    """

    def __init__(
        self,
        app: WSGIApp,
        pdp: DecisionPoint,
        *,
        resolve: Mapping[str, Any] | Resolver,
        config: WebConfig,
    ) -> None:
        self.app = app
        self._gate = Gate(pdp, resolve, config)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        gate = self._gate
        http, routable = http_request(environ)
        found = gate.resolve(http) if routable else None
        if inspect.isawaitable(found):
            close = getattr(found, "close", None)
            if close is not None:
                close()
            raise WebConfigError("an async resolver cannot be used with the WSGI middleware")
        target = checked_target(found)
        if target is None and routable and gate.config.unmatched == "pass":
            return self.app(environ, start_response)
        prepared = gate.prepare(http, target, gate.identify(http))
        if isinstance(prepared, Reply):
            return _reply(start_response, prepared)
        decision = gate.decide(prepared)
        if isinstance(decision, Reply):
            return _reply(start_response, decision)
        verdict = gate.verdict(decision, prepared)
        if verdict.reply is not None:
            return _reply(start_response, verdict.reply)
        environ[DECISION_KEY] = decision
        environ[REQUEST_KEY] = prepared.access
        token = CURRENT_REQUEST.set(prepared.access)
        try:
            if verdict.plan is None:
                return self.app(environ, start_response)
            return self._rewritten(environ, start_response, verdict.plan, decision)
        finally:
            CURRENT_REQUEST.reset(token)

    def _rewritten(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        plan: ObligationPlan,
        decision: Decision,
    ) -> Iterable[bytes]:
        """Buffer the app's response, apply obligations to its JSON, then start it."""
        started: list[tuple[str, list[tuple[str, str]]]] = []
        chunks: list[bytes] = []
        limit = self._gate.config.max_body_bytes

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            # Nothing has reached the client yet, so an error may replace the headers.
            started[:] = [(status, list(headers))]
            return chunks.append

        result = self.app(environ, capture)
        failed: str | None = None
        try:
            for chunk in result:
                chunks.append(chunk)
                if sum(map(len, chunks)) > limit:
                    failed = "response larger than max_body_bytes"
                    break
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started:
            failed = failed or "the application did not start a response"
        body = b"".join(chunks)
        if failed is None:
            failed = delegated_body(list(started[0][1]))
        if failed is None and body:
            rewritten = rewrite_json(_status_code(started[0][0]), started[0][1], body, plan)
            if isinstance(rewritten, str):
                failed = rewritten
            else:
                if rewritten != body:  # digests of the unmasked body: an oracle for it
                    kept = [(k, v) for k, v in started[0][1] if k.lower() not in BODY_DIGESTS]
                    started[0] = (started[0][0], kept)
                body = rewritten
        if failed is not None:
            return _reply(start_response, self._gate.failed_obligation(decision, failed))
        status, headers = started[0]
        if body:
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]


def decision_of(request: Any) -> Decision:
    """The decision for a WSGI environ, a Flask/Werkzeug request or a Django request.

    Raises :class:`NoDecisionError` if no zerotrust middleware decided this request.
    """
    found = _environ(request).get(DECISION_KEY)
    if not isinstance(found, Decision):
        raise NoDecisionError("no zerotrust decision for this request; is the middleware on?")
    return found


def access_request_of(request: Any) -> AccessRequest:
    """The access request the decision was made on (verified subject, device, context)."""
    found = _environ(request).get(REQUEST_KEY)
    if not isinstance(found, AccessRequest):
        raise NoDecisionError("no zerotrust decision for this request; is the middleware on?")
    return found


def _environ(request: Any) -> Mapping[str, Any]:
    if isinstance(request, Mapping):
        return request
    for name in ("environ", "META"):  # Werkzeug / Django
        found = getattr(request, name, None)
        if isinstance(found, Mapping):
            return found
    return {}


def _status_code(status: str) -> int:
    """PEP 3333's ``"404 Not Found"`` as 404; one that does not parse is held to a 200's rules."""
    code = status.split(" ", 1)[0]
    return int(code) if code.isdigit() and len(code) == 3 else 200


def _reply(start_response: StartResponse, reply: Reply) -> Iterator[bytes]:
    phrase = HTTPStatus(reply.status).phrase
    start_response(f"{reply.status} {phrase}", list(reply.headers))
    return iter([reply.body])
