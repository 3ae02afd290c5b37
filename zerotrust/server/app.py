"""The Starlette application: HTTP in front of :class:`Service`.

Order of checks on an API call, cheapest and least revealing first: refuse beyond
``max_requests_in_flight`` (503), authenticate the PEP (401), check the media type
(400), read at most ``max_body_bytes`` (413), decode the JSON (400), then decide in a
worker thread, or on the event loop when that is known to be quick (see
:mod:`zerotrust.server.slots`). One deadline, ``request_timeout`` from the moment the
app gets the request, covers reading the body (408 when it is still arriving) and
deciding (503). A decision that may be slow never runs on the event loop, so
``/healthz`` and ``/metrics`` answer meanwhile. A decision cannot be stopped once its
thread runs it, so a request that timed out keeps its place in
``max_requests_in_flight`` until the thread ends: the bound counts the decisions
running, not only the requests waiting. A client that goes away is one short INFO
line, never an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zerotrust.engine import PolicyDecisionPoint
from zerotrust.errors import DecisionUnavailableError, RequestError
from zerotrust.server.config import ServerConfig
from zerotrust.server.entities import Entities, load_entities
from zerotrust.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from zerotrust.server.metrics import Metrics, sample_of
from zerotrust.server.openapi import OPENAPI_PATH, openapi_document
from zerotrust.server.protocol import SearchKind, parse_json
from zerotrust.server.search import PageTokens
from zerotrust.server.service import RequestTimeout, Service
from zerotrust.server.slots import Inline, Slot, Slots
from zerotrust.server.tracing import Tracing

__all__ = [
    "API_PATHS",
    "MAX_HEAD_BYTES",
    "MAX_REQUEST_ID_CHARS",
    "SUBJECT_TOKEN_HEADER",
    "create_app",
]

_log = logging.getLogger("zerotrust.server")

API_PATHS = {
    "access_evaluation_endpoint": "/access/v1/evaluation",
    "access_evaluations_endpoint": "/access/v1/evaluations",
    "search_subject_endpoint": "/access/v1/search/subject",
    "search_resource_endpoint": "/access/v1/search/resource",
    "search_action_endpoint": "/access/v1/search/action",
}
_MAX_ERROR_CHARS = 500
#: A caller's ``X-Request-ID`` longer than this is replaced by a fresh one: it is
#: echoed, logged and written to the decision log with every decision.
MAX_REQUEST_ID_CHARS = 200
#: The most bytes of request line (path and query) and headers a request may have.
MAX_HEAD_BYTES = 16 * 1024
#: The status recorded (never sent) for a request whose client went away: nginx's
#: "client closed request".
_CLIENT_GONE = 499
#: Where a PEP forwards the user's token when it is not in ``subject.properties.token``.
#: Not ``Authorization``: that header carries the PEP's own credential.
SUBJECT_TOKEN_HEADER = "x-subject-token"
#: Seconds the behaviour store has to answer a readiness probe's ping.
_READY_TIMEOUT = 1.0
_T = TypeVar("_T")
_Operation = Callable[[Mapping[str, Any], float, Mapping[str, Any], str | None], dict[str, Any]]


def _page_key(config: ServerConfig) -> bytes:
    """The key of page tokens: derived from the secret, so that the secret is used for
    nothing but this (a key of its own when none is configured)."""
    if config.paging_secret is None:
        return secrets.token_bytes(32)
    secret = config.paging_secret.encode("utf-8")
    return hashlib.sha256(b"zerotrust page tokens\x00" + secret).digest()


def create_app(
    pdp: PolicyDecisionPoint,
    *,
    config: ServerConfig,
    entities: Entities | None = None,
    decide_inline: bool = False,
    tracing: Tracing | None = None,
    ready_needs_store: bool = True,
) -> Starlette:
    """An ASGI app serving AuthZEN 1.0 for ``pdp``.

    ``entities`` (or ``config.entities_file``) lists search candidates; without
    either they come from the policy data. Raises :class:`ServerConfigError` for an
    unusable configuration or entities file, and when ``config.identity`` is set but
    ``pdp`` was built without ``identity=`` (it would trust caller-asserted subjects).

    ``decide_inline`` says that ``pdp`` does no blocking I/O (its behaviour store is
    in memory, its decision log writes to a local file without ``fsync`` or nowhere,
    it verifies no identity): evaluations with small bodies are then decided on the
    event loop while decisions stay quick (see :mod:`zerotrust.server.slots`).
    Otherwise every decision runs in a worker thread.

    ``tracing``: one OpenTelemetry span per decision, in the trace of the caller's
    ``traceparent`` (see :mod:`zerotrust.server.tracing`).

    ``GET /readyz`` is 200 when a policy set is loaded and (``ready_needs_store``) the
    behaviour store answers its ``ping()`` within a second (a store without one, such as
    the memory store, always does); else 503 naming what is not ready. ``/healthz`` is
    liveness only: the process answers.

    Search page tokens are signed with ``config.paging_secret``, so a page from one
    replica continues on any other with the same secret; without it, with a key of
    this app's own.
    """
    if entities is None and config.entities_file is not None:
        entities = load_entities(config.entities_file)
    metrics = Metrics(functools.partial(sample_of, pdp))
    service = Service(pdp, config, metrics, PageTokens(_page_key(config)), entities, tracing)
    api = _Api(service, config, metrics, Inline(decide_inline), tracing)
    endpoints = {
        API_PATHS["access_evaluation_endpoint"]: _Endpoint(
            api, "evaluation", service.evaluation, inline=True
        ),
        API_PATHS["access_evaluations_endpoint"]: _Endpoint(
            api, "evaluations", service.evaluations, inline=True
        ),
        **{
            API_PATHS[f"search_{kind.value}_endpoint"]: _Endpoint(
                api, f"search_{kind.value}", functools.partial(service.search, kind)
            )
            for kind in (SearchKind.SUBJECT, SearchKind.RESOURCE, SearchKind.ACTION)
        },
    }
    routes = [Route(path, endpoint, methods=["POST"]) for path, endpoint in endpoints.items()]
    routes += [
        Route("/.well-known/authzen-configuration", api.metadata, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", functools.partial(api.readyz, ready_needs_store), methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        Route(OPENAPI_PATH, api.openapi, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.metrics = metrics  # e.g. for zerotrust serve's reloads
    app.add_middleware(_Edge, post=endpoints)
    return app


class _Edge:
    """What every HTTP request meets first: a bound on its head, and its request id.

    The request line and headers are refused (431) beyond ``MAX_HEAD_BYTES``: h11
    stops at 16 KiB only while a head is incomplete, so a head that arrives in one
    read could be sixteen times larger. ``X-Request-ID`` is echoed (or made) on every
    response, errors included. And this is the outermost place a response is sent
    from: a client gone while it is sent (ASGI 2.4 servers raise ``OSError`` from
    ``send``) is one INFO line, not an error with a traceback.

    A POST to an API path goes straight to its endpoint (``post``), past Starlette's
    router and exception middleware: neither has anything to do for it.
    """

    def __init__(self, app: ASGIApp, post: Mapping[str, ASGIApp]) -> None:
        self.app = app
        self._post = dict(post)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        for name, value in scope.get("headers", ()):
            size += len(name) + len(value) + 4  # ": " and CRLF, as on the wire
            if name == b"x-request-id" and not request_id:
                request_id = value.decode("latin-1")
        if not request_id or len(request_id) > MAX_REQUEST_ID_CHARS:
            request_id = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        encoded = request_id.encode("latin-1")
        gone = False

        async def send_with_id(message: Message) -> None:
            nonlocal gone
            if gone:
                return
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", encoded))
                message = {**message, "headers": headers}
            try:
                await send(message)
            except OSError:
                gone = True
                _log.info("client went away during the response (request id %s)", request_id)

        if size > MAX_HEAD_BYTES:
            refusal = _error(
                431, f"the request line and headers exceed {MAX_HEAD_BYTES} bytes", close=True
            )
            await refusal(scope, receive, send_with_id)
            return
        endpoint = None
        if scope["method"] == "POST" and not scope.get("root_path"):  # mounted: the router
            endpoint = self._post.get(scope["path"])
        await (endpoint or self.app)(scope, receive, send_with_id)


class _Endpoint:
    """One API operation as a plain ASGI app: the request, checked and decided."""

    def __init__(
        self, api: _Api, name: str, operation: _Operation, *, inline: bool = False
    ) -> None:
        self._api = api
        self._name = name
        self._operation = operation
        self._inline = inline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._api.call(scope, receive, self._name, self._operation, self._inline)
        if isinstance(response, bytes):  # 200 and its JSON: sent as is
            headers = [(b"content-type", b"application/json")]
            headers.append((b"content-length", str(len(response)).encode("ascii")))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": response})
        else:
            await response(scope, receive, send)


class _Api:
    def __init__(
        self,
        service: Service,
        config: ServerConfig,
        metrics: Metrics,
        inline: Inline,
        tracing: Tracing | None = None,
    ) -> None:
        self._service = service
        self._tracing = tracing
        self._config = config
        self._metrics = metrics
        self._slots = Slots(config.max_requests_in_flight, config.decision_threads)
        self._inline = inline
        # Compare digests, not the secrets, so the comparison time does not reveal length.
        self._digests = tuple(hashlib.sha256(s.encode()).digest() for s in config.bearer_secrets)
        self._openapi = _encode(
            openapi_document(
                authenticated=bool(config.bearer_secrets),
                verifies_identity=service.verifies_identity,
            )
        )

    async def metadata(self, request: Request) -> Response:
        base = self._config.base_url or str(request.base_url)
        base = base.rstrip("/")
        body: dict[str, Any] = {"policy_decision_point": base}
        body.update({key: base + path for key, path in API_PATHS.items()})
        if self._service.verifies_identity:
            del body["search_subject_endpoint"]  # candidates have no tokens: see parse_search
        response = _json(body)
        response.headers["cache-control"] = "max-age=300"
        return response

    async def openapi(self, request: Request) -> Response:
        """Unauthenticated, like the metadata: it says how to call, not what is allowed."""
        return Response(self._openapi, media_type="application/json")

    async def healthz(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(self, needs_store: bool, request: Request) -> Response:
        """Ready to decide: policies loaded, and the behaviour store reachable."""
        pdp = self._service.pdp
        checks: dict[str, str] = {"policies": "ok" if pdp.revision else "not loaded"}
        ping = getattr(getattr(pdp, "behavior_store", None), "ping", None)
        if needs_store and callable(ping):
            try:
                with anyio.fail_after(_READY_TIMEOUT):
                    answered = await anyio.to_thread.run_sync(ping, abandon_on_cancel=True)
            except TimeoutError:
                answered = False
            except Exception as exc:  # a store that fails to answer is not ready
                _log.info("readiness: the behaviour store did not answer: %s", exc)
                answered = False
            checks["behavior_store"] = "ok" if answered else "not answering"
        ready = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        if ready:
            body["revision"] = pdp.revision
        return _json(body, status=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        refusal = self._authenticate(request.headers, request.scope.get("client"))
        if refusal is not None:
            return refusal
        text = await anyio.to_thread.run_sync(self._metrics.render)
        return Response(text, headers={"content-type": METRICS_CONTENT_TYPE})

    async def call(
        self, scope: Scope, receive: Receive, endpoint: str, operation: _Operation, inline: bool
    ) -> Response | bytes:
        """The answer: a 200's JSON body, or any other response."""
        started = time.perf_counter()
        slot = self._slots.take()
        response: Response | bytes
        if slot is None:
            # Before anything else, the body above all: refusing must cost nothing.
            response = _error(503, "too many requests in flight; retry later", close=True)
            response.headers["retry-after"] = "1"
        else:
            try:
                response = await self._handle(scope, receive, endpoint, operation, slot, inline)
            finally:
                slot.release()
        status = 200 if isinstance(response, bytes) else response.status_code
        self._metrics.request(endpoint, status, time.perf_counter() - started)
        return response

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        endpoint: str,
        operation: _Operation,
        slot: Slot,
        inline: bool,
    ) -> Response | bytes:
        headers = Headers(scope=scope)
        refusal = self._authenticate(headers, scope.get("client"))
        if refusal is not None:
            return refusal
        problem = _media_type_problem(headers.get("content-type"))
        if problem is not None:
            return _error(400, problem, close=True)
        timeout = self._config.request_timeout
        deadline = time.monotonic() + timeout
        request_id = scope["state"]["request_id"]
        try:
            body = await _within(timeout, self._read_body(headers, receive))
        except TimeoutError:
            _log.info(
                "request body not received within %s s (%s, request id %s)",
                timeout,
                endpoint,
                request_id,
            )
            return _error(408, "the request body did not arrive in time", close=True)
        except ClientDisconnect:
            _log.info(
                "client went away before sending the whole body (%s, request id %s)",
                endpoint,
                request_id,
            )
            return Response(status_code=_CLIENT_GONE)
        if isinstance(body, Response):
            return body
        try:
            document = parse_json(body)
        except RequestError as exc:
            return _error(400, str(exc))
        # Read only when the PDP verifies identity; otherwise the header means nothing.
        header_token = _subject_token(headers) if self._service.verifies_identity else None
        if isinstance(header_token, Response):
            return header_token
        meta = {"api": "authzen", "endpoint": endpoint, "request_id": request_id}
        tracing = self._tracing
        with contextlib.ExitStack() as spans:
            # The request's span, when tracing: its decisions are made in its context.
            parent = spans.enter_context(tracing.request(headers, endpoint)) if tracing else None

            def decide() -> dict[str, Any]:
                if tracing is None:
                    return operation(document, deadline, meta, header_token)
                with tracing.within(parent):  # this thread may be a worker
                    return operation(document, deadline, meta, header_token)

            try:
                if inline and self._inline.fits(len(body)):
                    # CPU time: the decision's own work, not the moments the system ran
                    # another process (the loop's thread does nothing else meanwhile).
                    began = time.thread_time()
                    try:
                        result: dict[str, Any] | None = decide()
                    finally:
                        self._inline.took(time.thread_time() - began)
                else:
                    with anyio.fail_after(deadline - time.monotonic()):
                        # Abandoned at the deadline, so the answer (503) is on time; the
                        # slot stays taken until the thread is done with it.
                        result = await anyio.to_thread.run_sync(
                            slot.run, decide, deadline, abandon_on_cancel=True
                        )
            except RequestError as exc:
                return _error(400, str(exc))
            except (TimeoutError, RequestTimeout):
                return _error(503, "the request took longer than the configured timeout")
            except DecisionUnavailableError as exc:  # (the search database, say)
                return _error(503, f"{exc}; retry later")
            except Exception:
                _log.exception("internal error in %s", endpoint)
                return _error(500, "internal error")
        if result is None:  # the deadline passed before a worker was free
            return _error(503, "the request took longer than the configured timeout")
        return _encode(result)

    def _authenticate(self, headers: Headers, client: Any) -> Response | None:
        if not self._digests:
            # Only reachable with insecure_local: serve loopback callers, nobody else.
            if _is_loopback(client[0] if client else None):
                return None
            return _error(
                403, "this server accepts only loopback callers (insecure_local)", close=True
            )
        header = headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _error(
                401,
                "a bearer token is required",
                www_authenticate='Bearer realm="zerotrust"',
                close=True,
            )
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        matched = False
        for expected in self._digests:  # no early exit: every secret is compared
            matched |= hmac.compare_digest(digest, expected)
        if not matched:
            return _error(
                401,
                "the bearer token is not valid",
                www_authenticate='Bearer realm="zerotrust", error="invalid_token"',
                close=True,
            )
        return None

    async def _read_body(self, headers: Headers, receive: Receive) -> bytes | Response:
        limit = self._config.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _error(400, "invalid Content-Length", close=True)
            if int(declared) > limit:
                return _error(413, f"the request body is larger than {limit} bytes", close=True)
        chunks: list[bytes] = []
        size = 0
        while True:  # as Starlette's Request.stream(), without the Request
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return _error(413, f"the request body is larger than {limit} bytes", close=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _subject_token(headers: Headers) -> str | Response | None:
    """The user token forwarded in ``X-Subject-Token`` (a bare JWT, or ``Bearer <JWT>``
    as copied from the user's own ``Authorization`` header); 400 if sent twice."""
    values = headers.getlist(SUBJECT_TOKEN_HEADER)
    if not values:
        return None
    if len(values) > 1:
        return _error(400, "X-Subject-Token must be sent at most once")
    value = values[0].strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        value = rest.strip()
    return value or None


def _media_type_problem(content_type: str | None) -> str | None:
    if not content_type:
        return "Content-Type must be application/json"
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return f"Content-Type must be application/json, not {media.strip()[:100]!r}"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return "the only supported charset is utf-8"
    return None


async def _within(seconds: float, work: Coroutine[Any, Any, _T]) -> _T:
    """``await work`` within ``seconds`` (else TimeoutError): by asyncio's own timeout
    (anyio's scope costs several times as much), or anyio's under another library."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not asyncio (trio)
        with anyio.fail_after(seconds):
            return await work
    async with asyncio.timeout(seconds):
        return await work


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host in {"127.0.0.1", "::1"}:  # the usual ones, without parsing
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


def _encode(body: Any) -> bytes:
    # ensure_ascii: any string the caller sent (even a lone surrogate) encodes safely.
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _error(
    status: int, message: str, *, www_authenticate: str | None = None, close: bool = False
) -> Response:
    """The spec's error body: a message string (plain text).

    ``close`` when the request body may be left unread: the connection then cannot
    carry another request, and the client cannot go on uploading into it.
    """
    text = message if len(message) <= _MAX_ERROR_CHARS else message[:_MAX_ERROR_CHARS] + "..."
    response = Response(
        text.encode("utf-8", "backslashreplace"),
        status_code=status,
        media_type="text/plain; charset=utf-8",
    )
    if www_authenticate is not None:
        response.headers["www-authenticate"] = www_authenticate
    if close:
        response.headers["connection"] = "close"
    return response
