"""Key sets: RemoteJWKS against a real HTTP server on 127.0.0.1 serving a JWKS that
changes, and the parsing it shares with StaticKeys (unusable keys skipped)."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from hypothesis import HealthCheck, given, settings
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt_helpers import AUDIENCE, ISSUER, NOW, b64u, claims, token
from strategies import jwks_documents

from zerotrust.identity import (
    IdentityConfigError,
    IdentityResolver,
    Issuer,
    JWTVerifier,
    KeysUnavailableError,
    RemoteJWKS,
    StaticKeys,
    UnknownKeyError,
)

INTERVAL = 30.0
TTL = 300.0


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits += 1
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/jwks")
            self.end_headers()
            return
        body = self.server.body if self.server.body is not None else json.dumps(self.server.jwks)
        data = body.encode() if isinstance(body, str) else body
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits = 0
        self.delay = 0.0
        self.jwks: dict[str, Any] = {"keys": []}
        self.body: str | bytes | None = None
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client closing early (size limit, timeout) is expected here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/jwks"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class _Key:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.jwk = {**ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True), "kid": kid}

    def token(self, **over: Any) -> str:
        return token({"alg": "ES256", "kid": self.kid}, claims(**over), "ES256", self.private)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def timer() -> _Clock:
    return _Clock()


def _verifier(url: str, timer: _Clock, **options: Any) -> tuple[JWTVerifier, RemoteJWKS]:
    source = RemoteJWKS(
        url,
        timeout=options.pop("timeout", 2.0),
        cache_ttl=TTL,
        min_refresh_interval=INTERVAL,
        timer=timer,
        **options,
    )
    v = JWTVerifier(issuers=Issuer(ISSUER, source), audiences=AUDIENCE, clock=lambda: NOW)
    return v, source


def test_rotation_new_keys_removed_keys_and_server_down(server: _Server, timer: _Clock) -> None:
    k1, k2, k3 = _Key("k1"), _Key("k2"), _Key("k3")
    server.jwks = {"keys": [k1.jwk]}
    v, source = _verifier(server.url, timer)
    assert v.verify(k1.token()).id
    assert server.hits == 1

    # A new key appears; a token using it arrives within the refresh interval: refused.
    server.jwks = {"keys": [k1.jwk, k2.jwk]}
    timer.t += 1
    with pytest.raises(UnknownKeyError):
        v.verify(k2.token())
    assert server.hits == 1
    # After the interval, the unknown kid triggers one refresh and the new key works.
    timer.t += INTERVAL
    assert v.verify(k2.token()).id
    assert v.verify(k1.token()).id
    assert server.hits == 2

    # k1 is removed: once the cache expires the refresh drops it and k1 is refused.
    server.jwks = {"keys": [k2.jwk]}
    timer.t += TTL + 1
    with pytest.raises(UnknownKeyError):
        v.verify(k1.token())
    assert v.verify(k2.token()).id
    assert server.hits == 3

    # The server goes down: the known key keeps working, unknown keys are refused.
    server.stop()
    timer.t += TTL + 1
    assert v.verify(k2.token()).id
    timer.t += INTERVAL + 1
    with pytest.raises(UnknownKeyError):
        v.verify(k3.token())
    assert v.verify(k2.token()).id
    assert source.fetches == 5  # cache-expiry try and unknown-kid try, both failed


def test_flood_of_random_kids_is_rate_limited(server: _Server, timer: _Clock) -> None:
    k1 = _Key("k1")
    server.jwks = {"keys": [k1.jwk]}
    v, source = _verifier(server.url, timer)
    assert v.verify(k1.token())
    forged = [_Key(f"random-{uuid.uuid4()}") for _ in range(4)]
    errors: list[BaseException] = []

    def flood() -> None:
        for i in range(100):
            try:
                v.verify(forged[i % 4].token())
            except UnknownKeyError:
                pass
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert server.hits == 1  # 800 unknown kids, no refresh inside the interval
    timer.t += INTERVAL
    flood()
    assert server.hits == 2  # then exactly one per interval
    assert source.fetches == 2


def test_first_fetch_failure_fails_closed_then_recovers(server: _Server, timer: _Clock) -> None:
    k1 = _Key("k1")
    server.body = "not json"
    v, _ = _verifier(server.url, timer)
    with pytest.raises(KeysUnavailableError):
        v.verify(k1.token())
    server.body = None
    server.jwks = {"keys": [k1.jwk]}
    with pytest.raises(KeysUnavailableError):
        v.verify(k1.token())  # still inside the interval: no new fetch
    timer.t += INTERVAL
    assert v.verify(k1.token()).id


@pytest.mark.parametrize(
    "body",
    [
        b"x" * 2048,
        json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}]}),
        json.dumps({"keys": "nope"}),
        json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
    ],
    ids=["too-large", "symmetric-only", "keys-not-a-list", "broken-ec-key"],
)
def test_bad_documents_keep_the_last_good_keys(
    server: _Server, timer: _Clock, body: str | bytes
) -> None:
    k1 = _Key("k1")
    server.jwks = {"keys": [k1.jwk]}
    v, source = _verifier(server.url, timer, max_bytes=1024)
    assert v.verify(k1.token())
    server.body = body
    timer.t += TTL + 1
    assert v.verify(k1.token()).id
    assert source.fetches == 2


def test_redirects_are_refused(server: _Server, timer: _Clock) -> None:
    k1 = _Key("k1")
    server.jwks = {"keys": [k1.jwk]}
    v, _ = _verifier(server.url.replace("/jwks", "/redirect"), timer)
    with pytest.raises(KeysUnavailableError):
        v.verify(k1.token())
    assert server.hits == 1


def test_timeout_is_honoured(server: _Server, timer: _Clock) -> None:
    server.delay = 1.0
    v, _ = _verifier(server.url, timer, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(KeysUnavailableError):
        v.verify(_Key("k1").token())
    assert time.monotonic() - started < 0.9


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example.com/jwks",
        "file:///etc/passwd",
        "ftp://127.0.0.1/jwks",
        "https:///jwks",
        "http://10.0.0.1/jwks",
    ],
)
def test_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(IdentityConfigError):
        RemoteJWKS(url)


def test_async_resolution_fetches_in_a_thread(server: _Server, timer: _Clock) -> None:
    k1 = _Key("k1")
    server.jwks = {"keys": [k1.jwk]}
    v, _ = _verifier(server.url, timer)
    resolver = IdentityResolver(jwt=v)
    request = {
        "subject": {"token": k1.token()},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
    }
    assert resolver.would_block(request)
    resolved = asyncio.run(resolver.resolve_async(request))
    assert resolved["subject"]["id"] == "someone@example.net"
    assert not resolver.would_block(request)
    assert asyncio.run(resolver.resolve_async(request)) == resolved
    assert server.hits == 1


def test_known_keys_work_while_a_slow_refresh_runs(server: _Server, timer: _Clock) -> None:
    k1, k2 = _Key("k1"), _Key("k2")
    server.jwks = {"keys": [k1.jwk]}
    v, _ = _verifier(server.url, timer)
    assert v.verify(k1.token())
    server.jwks = {"keys": [k1.jwk, k2.jwk]}
    server.delay = 0.6
    timer.t += INTERVAL
    results: list[str] = []
    refresher = threading.Thread(target=lambda: results.append(v.verify(k2.token()).id))
    refresher.start()
    time.sleep(0.1)  # the refresh is now in flight
    started = time.monotonic()
    assert v.verify(k1.token()).id
    assert time.monotonic() - started < 0.3
    refresher.join()
    assert results == ["someone@example.net"]
    assert server.hits == 2


def test_concurrent_first_requests_share_one_fetch(server: _Server, timer: _Clock) -> None:
    k1 = _Key("k1")
    server.jwks = {"keys": [k1.jwk]}
    server.delay = 0.2
    v, _ = _verifier(server.url, timer)
    tok = k1.token()
    outcomes: list[object] = []

    def work() -> None:
        try:
            outcomes.append(v.verify(tok).id)
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["someone@example.net"] * 6
    assert server.hits == 1


# -- key sets: unusable keys are skipped (RFC 7517 section 5), on every path --------------


def _keycloak_realm() -> tuple[dict[str, Any], Any]:
    """A Keycloak-style realm key set (signing key, RSA-OAEP encryption key, X25519
    key) and the signing key's private half."""
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    agreement = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    keys = [
        {
            **RSAAlgorithm.to_jwk(encryption, as_dict=True),
            "kid": "enc-oaep",
            "use": "enc",
            "alg": "RSA-OAEP",
        },
        {
            **RSAAlgorithm.to_jwk(signing.public_key(), as_dict=True),
            "kid": "sig-rs256",
            "use": "sig",
            "alg": "RS256",
        },
        {
            "kty": "OKP",
            "crv": "X25519",
            "kid": "enc-x25519",
            "use": "enc",
            "alg": "ECDH-ES",
            "x": b64u(agreement),
        },
    ]
    return {"keys": keys}, signing


def _rs256(private: Any, kid: str) -> str:
    return token({"alg": "RS256", "kid": kid}, claims(), "RS256", private)


def _skip_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "zerotrust.identity" and r.levelno == logging.WARNING and "skipped" in r.msg
    ]


def test_keycloak_key_set_file_loads_its_signing_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The reported fault: the whole file was refused because of the encryption keys.
    document, private = _keycloak_realm()
    path = tmp_path / "certs.json"
    path.write_text(json.dumps(document))
    with caplog.at_level(logging.WARNING, logger="zerotrust.identity"):
        keys = StaticKeys.from_jwks_file(path)
    assert [k.kid for k in keys.keys] == ["sig-rs256"]
    v = JWTVerifier(issuers=Issuer(ISSUER, keys), audiences=AUDIENCE, clock=lambda: NOW)
    assert v.verify(_rs256(private, "sig-rs256")).id
    lines = _skip_lines(caplog)
    assert len(lines) == 2
    assert "'enc-oaep'" in lines[0] and "\"use\" is 'enc'" in lines[0]
    assert "'enc-x25519'" in lines[1] and "skipped" in lines[1]


def test_keycloak_key_set_url_loads_its_signing_key_and_reports_skips_once(
    server: _Server, timer: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    document, private = _keycloak_realm()
    server.jwks = document
    v, source = _verifier(server.url, timer)
    with caplog.at_level(logging.WARNING, logger="zerotrust.identity"):
        assert v.verify(_rs256(private, "sig-rs256")).id
        timer.t += TTL + 1
        assert v.verify(_rs256(private, "sig-rs256")).id  # refreshed: same skips, no lines
    assert source.fetches == 2
    assert len(_skip_lines(caplog)) == 2
    with pytest.raises(UnknownKeyError):
        v.verify(_rs256(private, "enc-oaep"))  # an encryption key's kid never verifies


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=jwks_documents())
def test_key_sets_load_exactly_their_usable_keys(
    server: _Server, timer: _Clock, case: tuple[dict[str, Any], frozenset[str]]
) -> None:
    """Both ways in (a document or file, and a URL) share one parser: the keys loaded
    are exactly the usable ones; with none usable, a typed error (static) or no keys
    (remote, which then refuses every token)."""
    document, usable = case
    if usable:
        assert {k.kid for k in StaticKeys.from_jwks(document).keys} == usable
    else:
        with pytest.raises(IdentityConfigError, match="no usable signing key"):
            StaticKeys.from_jwks(document)
    server.jwks = document
    source = RemoteJWKS(server.url, timer=timer)
    assert source.refresh() is bool(usable)
    if usable:
        assert {k.kid for k in source.lookup(None)} == usable
    else:
        with pytest.raises(KeysUnavailableError):
            source.lookup(None)
