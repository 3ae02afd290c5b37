"""A remote PDP behind the web integrations: zerotrust.web.asgi.ZeroTrustMiddleware,
zerotrust.web.fastapi.ZeroTrust and zerotrust.web.wsgi.ZeroTrustMiddleware with an
AuthZEN client as ``pdp=``, against a real
``zerotrust serve`` app (uvicorn on 127.0.0.1) deciding with the shipped policies.

The answers are those of the same middleware with the local PDP (masking obligations,
RFC 9470 step-up challenges, refusals), and a PDP that cannot be asked, or answers
nonsense, is a refusal (500) and the view never runs: the integrations fail closed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from client_stubs import always, closed_port, listener, stub_pdp
from flask import Flask
from starlette.testclient import TestClient
from test_web_asgi import CALLS, app
from test_web_fastapi import CALLS as FASTAPI_CALLS
from test_web_fastapi import build
from web_helpers import (
    CUSTOMERS,
    bearer,
    customer_properties,
    resolve,
    shipped_pdp,
    web_config,
)
from werkzeug.test import Client as WerkzeugClient

from zerotrust.client import (
    AsyncAuthZENClient,
    AuthZENClient,
    PDPResponseError,
    PDPUnavailableError,
    Timeout,
)
from zerotrust.server import ServerConfig, create_app
from zerotrust.web.flask import ZeroTrust as ZeroTrustFlask
from zerotrust.web.wsgi import ZeroTrustMiddleware as WSGIMiddleware

SECRET = "client-web-secret-0123456789"


@pytest.fixture
def remote() -> Iterator[str]:
    """``zerotrust serve``'s app over uvicorn on 127.0.0.1, with the shipped policies on
    the web tests' fixed clock (and a fresh behaviour history for each test); its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(shipped_pdp(), config=ServerConfig(bearer_secrets=(SECRET,))),
        log_level="warning",
        lifespan="off",
        http="h11",
        ws="none",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


Client = Callable[[str], Any]


def sync_client(url: str, **options: Any) -> AuthZENClient:
    return AuthZENClient(url, token=SECRET, **options)


def async_client(url: str, **options: Any) -> AsyncAuthZENClient:
    return AsyncAuthZENClient(url, token=SECRET, **options)


KINDS = pytest.mark.parametrize("make", [sync_client, async_client], ids=["sync", "async"])

SCENARIOS: list[tuple[str, str, dict[str, Any]]] = [
    ("masked", "/customers/c-1001", {}),
    ("manager", "/customers/c-1001", {"roles": ("manager",)}),
    ("step-up", "/customers/c-1002", {"amr": ("pwd",)}),
    ("mfa", "/customers/c-1002", {}),
    ("other-department", "/customers/c-5150", {}),
    ("export", "/departments/support/export", {}),
]


def answer(client: TestClient, path: str, headers: dict[str, str]) -> tuple[int, Any, str | None]:
    r = client.get(path, headers=headers)
    body = r.json() if r.content else None
    if isinstance(body, dict):
        body.pop("decision_id", None)
    return r.status_code, body, r.headers.get("www-authenticate")


@KINDS
def test_the_middleware_answers_as_with_a_local_pdp(remote: str, make: Client) -> None:
    pdp = make(remote)
    with (
        TestClient(app(pdp=pdp), client=("10.1.2.3", 5000)) as through_remote,
        TestClient(app(pdp=shipped_pdp()), client=("10.1.2.3", 5000)) as local,
    ):
        for _, path, claims in SCENARIOS:
            headers = bearer(**claims)
            assert answer(through_remote, path, headers) == answer(local, path, headers), path
        assert answer(through_remote, "/customers/c-1001", {}) == answer(
            local, "/customers/c-1001", {}
        )
        r = through_remote.get("/customers/c-1001", headers=bearer())
        assert r.status_code == 200 and r.json()["card_number"] == "****"  # the remote mask
        assert r.headers["x-decision-id"]  # the remote decision's id, in the view
        close(pdp, through_remote)


def close(pdp: Any, client: TestClient) -> None:
    """Close the client; an async one on the event loop it used (as httpx requires)."""
    if isinstance(pdp, AsyncAuthZENClient):
        assert client.portal is not None
        client.portal.call(pdp.aclose)
    else:
        pdp.close()


@KINDS
@pytest.mark.parametrize("failure", ["refused", "silent", "500", "malformed", "contradiction"])
def test_a_pdp_that_cannot_answer_is_a_refusal(make: Client, failure: str) -> None:
    """Fail closed: the request is refused (500) and the view is never run."""
    CALLS.clear()
    with contextlib.ExitStack() as stack:
        if failure == "refused":
            url = closed_port()
        elif failure == "silent":
            url = stack.enter_context(listener("hold")).url
        else:
            body = {
                "500": (500, b"boom"),
                "malformed": (200, b'{"decision": "yes"}'),
                "contradiction": (200, b'{"decision": true, "context": {"effect": "deny"}}'),
            }[failure]
            url = stack.enter_context(stub_pdp(always(*body))).url
        options: dict[str, Any] = {"retries": 1, "backoff": 0.001}
        options["timeout"] = Timeout(connect=1, read=0.3)
        pdp = make(url, **options)
        with TestClient(app(pdp=pdp), raise_server_exceptions=False) as client:
            r = client.get("/customers/c-1001", headers=bearer(roles=("manager",)))
            close(pdp, client)
        assert r.status_code == 500
        assert "4111111111111111" not in r.text
        assert CALLS == []
        pdp = make(url, **options)
        with TestClient(app(pdp=pdp)) as raising:
            with pytest.raises((PDPUnavailableError, PDPResponseError)):
                raising.get("/customers/c-1001", headers=bearer(roles=("manager",)))
            close(pdp, raising)
        assert CALLS == []


@KINDS
def test_fastapi_with_a_remote_pdp(remote: str, make: Client) -> None:
    FASTAPI_CALLS.clear()
    pdp = make(remote)
    with TestClient(build(pdp=pdp)) as client:
        r = client.get("/customers/c-1001", headers=bearer())
        assert r.status_code == 200 and r.json()["card_number"] == "****"
        assert client.get("/customers/c-5150", headers=bearer()).status_code == 403
        step = client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
        assert step.status_code == 401 and "acr_values" in step.headers["www-authenticate"]
        close(pdp, client)
    assert FASTAPI_CALLS == ["c-1001"]


@KINDS
def test_fastapi_fails_closed(make: Client) -> None:
    FASTAPI_CALLS.clear()
    pdp = make(closed_port(), retries=0)
    with TestClient(build(pdp=pdp), raise_server_exceptions=False) as client:
        r = client.get("/customers/c-1001", headers=bearer(roles=("manager",)))
        close(pdp, client)
    assert r.status_code == 500 and "4111111111111111" not in r.text
    assert FASTAPI_CALLS == []


def wsgi_customers(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A bare WSGI app serving the customers (what the WSGI middleware wraps)."""
    CALLS.append(environ["PATH_INFO"])
    record = CUSTOMERS.get(environ["PATH_INFO"].rsplit("/", 1)[-1])
    body = json.dumps(record).encode()
    start_response("200 OK", [("content-type", "application/json")])
    return [body]


def test_the_wsgi_middleware_with_a_remote_pdp(remote: str) -> None:
    CALLS.clear()
    with AuthZENClient(remote, token=SECRET) as pdp:
        app = WSGIMiddleware(wsgi_customers, pdp, resolve=resolve, config=web_config())
        client = WerkzeugClient(app)
        r = client.get("/customers/c-1001", headers=bearer())
        assert r.status_code == 200 and r.get_json()["card_number"] == "****"
        assert client.get("/customers/c-5150", headers=bearer()).status_code == 403
        step = client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
        assert step.status_code == 401 and "acr_values" in step.headers["www-authenticate"]
    assert CALLS == ["/customers/c-1001"]


def test_the_wsgi_middleware_fails_closed() -> None:
    CALLS.clear()
    with AuthZENClient(closed_port(), retries=0) as pdp:
        app = WSGIMiddleware(wsgi_customers, pdp, resolve=resolve, config=web_config())
        with pytest.raises(PDPUnavailableError):
            WerkzeugClient(app).get("/customers/c-1001", headers=bearer(roles=("manager",)))
    assert CALLS == []


def test_flask_takes_a_remote_pdp(remote: str) -> None:
    with AuthZENClient(remote, token=SECRET) as pdp:
        app = Flask(__name__)
        zt = ZeroTrustFlask(app, pdp=pdp, config=web_config())

        @app.get("/customers/<id>")
        @zt.requires(
            "customer_record",
            "read",
            resource_id="id",
            properties=lambda id: customer_properties("customer_record", id, None),
        )
        def read(id: str) -> Any:
            return dict(CUSTOMERS[id])

        client = app.test_client()
        r = client.get("/customers/c-1001", headers=bearer())
        assert r.status_code == 200 and r.get_json()["card_number"] == "****"
        assert client.get("/customers/c-5150", headers=bearer()).status_code == 403
