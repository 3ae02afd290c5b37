"""The client's settings and the HTTP rules shared by the sync and async clients.

What is retried and what is not is decided here, once: only a request that failed
before any response (the connection was refused, or was reset or closed before the
answer began) is sent again, a bounded number of times with a bounded backoff. A
status, even a 5xx, is an answer and is never retried; a read timeout is not retried
either, because the PDP may still be deciding. Nothing here sends anything.
"""

from __future__ import annotations

import ipaddress
import json
import math
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
import httpx

from zerotrust.client._convert import PDPMetadata, metadata_of, parse_json
from zerotrust.client.errors import (
    ClientConfigError,
    PDPRequestError,
    PDPResponseError,
    PDPUnavailableError,
)
from zerotrust.errors import RequestError

__all__ = [
    "DEFAULT_PATHS",
    "DEFAULT_TIMEOUT",
    "Settings",
    "Timeout",
    "backoff_delay",
    "call_headers",
    "check_metadata",
    "failure",
    "is_metadata_absent",
    "is_retryable",
    "json_bytes",
    "make_settings",
    "metadata_endpoint",
    "read_answer",
    "read_capped",
    "read_capped_async",
    "request_id",
    "too_large",
    "well_known_url",
]

#: AuthZEN 1.0 section 10.1, table "API Endpoint Overview": used when no metadata names one.
DEFAULT_PATHS: Mapping[str, str] = {
    "access_evaluation_endpoint": "/access/v1/evaluation",
    "access_evaluations_endpoint": "/access/v1/evaluations",
    "search_subject_endpoint": "/access/v1/search/subject",
    "search_resource_endpoint": "/access/v1/search/resource",
    "search_action_endpoint": "/access/v1/search/action",
}
#: RFC 6750 section 2.1 b64token: what an Authorization header can carry as it is.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")
_MAX_RETRIES = 10
#: Failures before any response: the request was not answered, so sending it again asks
#: the same question (every AuthZEN call is a read-only query; see docs/client.md).
_RETRYABLE = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)
_UNAVAILABLE_STATUS = frozenset({408, 429})


def _positive(name: str, value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        raise ClientConfigError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _connect(value: Any) -> float:
    return _positive("Timeout.connect", value)


def _read(value: Any) -> float:
    return _positive("Timeout.read", value)


@attrs.frozen
class Timeout:
    """Seconds to wait: ``connect`` for the TCP (and TLS) connection, ``read`` for each
    read of the answer (and each write of the request). Both positive and finite."""

    connect: float = attrs.field(default=2.0, converter=_connect)
    read: float = attrs.field(default=5.0, converter=_read)


#: The default timeouts (a frozen value, shared safely).
DEFAULT_TIMEOUT = Timeout()


@attrs.frozen
class Settings:
    """Everything a client was configured with, checked once (private to the client)."""

    base_url: str
    headers: tuple[tuple[str, str], ...]
    timeout: Timeout
    retries: int
    backoff: float
    max_backoff: float
    max_response_bytes: int
    discover: bool

    def httpx_timeout(self) -> httpx.Timeout:
        t = self.timeout
        return httpx.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.connect)


def make_settings(
    base_url: str,
    *,
    token: str | None,
    timeout: float | Timeout,
    retries: int,
    backoff: float,
    max_backoff: float,
    headers: Mapping[str, str] | None,
    discover: bool,
    insecure_http: bool,
    max_response_bytes: int,
) -> Settings:
    """Check every option; raise :class:`ClientConfigError` naming the first bad one."""
    base = _base_url(base_url, insecure_http)
    if not isinstance(timeout, Timeout):
        seconds = _positive("timeout", timeout)
        timeout = Timeout(connect=seconds, read=seconds)
    if type(retries) is not int or not 0 <= retries <= _MAX_RETRIES:
        raise ClientConfigError(f"retries must be an integer from 0 to {_MAX_RETRIES}")
    backoff = _positive("backoff", backoff)
    max_backoff = _positive("max_backoff", max_backoff)
    if max_backoff > 60:
        raise ClientConfigError("max_backoff must be at most 60 seconds")
    if type(max_response_bytes) is not int or max_response_bytes < 1024:
        raise ClientConfigError("max_response_bytes must be an integer of at least 1024")
    sent: dict[str, str] = {"accept": "application/json"}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ClientConfigError("headers must map strings to strings")
        if name.lower() == "authorization":
            raise ClientConfigError("give the PEP's bearer token as token=, not as a header")
        sent[name.lower()] = value
    if token is not None:
        if not isinstance(token, str) or not _TOKEN.match(token):
            raise ClientConfigError(
                "token must be an RFC 6750 bearer token (letters, digits, -._~+/ then = padding)"
            )
        sent["authorization"] = f"Bearer {token}"
    return Settings(
        base_url=base,
        headers=tuple(sent.items()),
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        max_backoff=max_backoff,
        max_response_bytes=max_response_bytes,
        discover=bool(discover),
    )


def _base_url(value: Any, insecure_http: bool) -> str:
    if not isinstance(value, str):
        raise ClientConfigError("base_url must be a string")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ClientConfigError(f"base_url is not a URL: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ClientConfigError("base_url must be an http:// or https:// URL with a host")
    if url.query or url.fragment or url.userinfo:
        raise ClientConfigError("base_url must have no query, fragment or user info")
    if url.scheme == "http" and not insecure_http and not _loopback(url.host):
        raise ClientConfigError(
            "base_url: AuthZEN requires HTTPS (section 10.1); plain http:// is allowed only "
            "to a loopback address, or with insecure_http=True"
        )
    return str(url).rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def well_known_url(base_url: str) -> str:
    """AuthZEN 1.0 section 9.2: the well-known string goes between host and path."""
    url = httpx.URL(base_url)
    path = url.path.rstrip("/")
    return str(url.copy_with(path="/.well-known/authzen-configuration" + path))


def check_metadata(body: dict[str, Any], base_url: str) -> PDPMetadata:
    """Metadata the client may use: its identifier is the configured base URL (section
    9.3, against PDP mix-up), and every endpoint is on the same origin, so the PEP's
    bearer token never goes to a host it was not configured for."""
    metadata = metadata_of(body)
    if metadata.policy_decision_point.rstrip("/") != base_url:
        raise PDPResponseError(
            f"metadata: policy_decision_point {metadata.policy_decision_point!r} is not "
            f"the configured base_url {base_url!r} (AuthZEN 1.0 section 9.3)"
        )
    origin = _origin(httpx.URL(base_url))
    for key in DEFAULT_PATHS:
        endpoint = getattr(metadata, key)
        if endpoint is not None:
            try:
                url = httpx.URL(base_url).join(endpoint)
            except httpx.InvalidURL as exc:
                raise PDPResponseError(f"metadata.{key}: not a URL") from exc
            if _origin(url) != origin:
                raise PDPResponseError(f"metadata.{key}: {endpoint!r} is not on the PDP's origin")
            metadata = attrs.evolve(metadata, **{key: str(url)})
    return metadata


def metadata_endpoint(metadata: PDPMetadata, key: str) -> str:
    """The URL the metadata names for ``key``; a PDP whose metadata leaves an API out
    does not offer it (section 9.1), and is not asked."""
    url: str | None = getattr(metadata, key)
    if url is None:
        name = key.removesuffix("_endpoint")
        raise PDPRequestError(f"the PDP's metadata offers no {name} endpoint")
    return url


def call_headers(settings: Settings, has_body: bool) -> dict[str, str]:
    """The headers of one call: the configured ones, a fresh X-Request-ID (section
    10.3; the same on each retry), and the JSON media type when there is a body."""
    headers = dict(settings.headers)
    headers["x-request-id"] = request_id()
    if has_body:
        headers["content-type"] = "application/json"
    return headers


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def is_retryable(exc: BaseException) -> bool:
    """Whether the request failed before any answer (and may be sent again)."""
    return isinstance(exc, _RETRYABLE)


def failure(exc: httpx.HTTPError, what: str, url: str, attempts: int) -> Exception:
    """The typed error for an httpx failure: unavailable, unless the body was undecodable."""
    if isinstance(exc, httpx.DecodingError):
        return PDPResponseError(f"{what}: the response could not be decoded: {exc}")
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    detail = str(exc) or type(exc).__name__
    return PDPUnavailableError(f"{what}: the PDP at {url} {kind}{tries} ({detail})")


def backoff_delay(settings: Settings, attempt: int) -> float:
    """Exponential backoff, capped, with jitter so that PEPs do not retry in step."""
    ceiling = min(settings.max_backoff, settings.backoff * 2**attempt)
    return float(ceiling * random.uniform(0.5, 1.0))


def read_answer(status: int, headers: httpx.Headers, raw: bytes, what: str) -> dict[str, Any]:
    """A 200 ``application/json`` object (section 10.1), or the typed error: 4xx refused,
    5xx / 408 / 429 unavailable, anything else a malformed answer."""
    if status >= 500 or status in _UNAVAILABLE_STATUS:
        raise PDPUnavailableError(f"{what}: the PDP answered {status}{_text(raw)}", status=status)
    if 400 <= status < 500:
        raise PDPRequestError(
            f"{what}: the PDP refused the request: {status}{_text(raw)}", status=status
        )
    if status != 200:
        raise PDPResponseError(
            f"{what}: unexpected status {status} (redirects are not followed: the bearer "
            "token would go with them)"
        )
    media = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":
        raise PDPResponseError(
            f"{what}: the response is {media or 'untyped'}, not application/json"
        )
    return parse_json(raw, what)


def _text(raw: bytes) -> str:
    """The start of an error body, for the message (section 10.2: a message string)."""
    text = raw[:200].decode("utf-8", "replace").strip()
    return f": {text}" if text else ""


def read_capped(chunks: Any, limit: int, what: str) -> bytes:
    """Join body chunks, refusing a body larger than ``limit`` bytes."""
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise PDPResponseError(f"{what}: the response is larger than {limit} bytes")
    return bytes(out)


async def read_capped_async(chunks: Any, limit: int, what: str) -> bytes:
    """As :func:`read_capped`, for an async iterator of chunks."""
    out = bytearray()
    async for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise PDPResponseError(f"{what}: the response is larger than {limit} bytes")
    return bytes(out)


def too_large(response: httpx.Response, limit: int) -> bool:
    length = response.headers.get("content-length", "")
    return length.isdigit() and int(length) > limit


def json_bytes(body: Any) -> bytes:
    """A request body as JSON; a value JSON cannot carry is the caller's error."""
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise RequestError("body", f"cannot be sent as JSON: {exc}") from exc


def request_id() -> str:
    """An X-Request-ID for one call (section 10.3), the same on each retry of it."""
    return str(uuid.uuid4())


def is_metadata_absent(status: int) -> bool:
    """A PDP without metadata (section 9 makes it RECOMMENDED): use the default paths."""
    return status in (404, 405, 410, 501)
