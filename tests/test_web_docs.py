"""docs/integration.md runs as written: the set-up, FastAPI, Flask and the WebSocket
walk-through are taken from the page and executed against the shipped policies plus
the page's own ``watch`` policy, with a real signed JWT, so the page cannot rot."""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from starlette.testclient import TestClient, WebSocketDenialResponse
from web_helpers import POLICIES, ROOT

from zerotrust import PolicyDecisionPoint
from zerotrust.web import AccessDenied, NoDecisionError

PAGE = ROOT / "docs" / "integration.md"
ISSUER, AUDIENCE = "https://idp.example.com", "customer-api"  # as the page configures
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def sections() -> dict[str, list[tuple[str, str]]]:
    """``{"## heading": [(language, code), ...]}`` for every section of the page."""
    out: dict[str, list[tuple[str, str]]] = {}
    for part in re.split(r"^(?=## )", PAGE.read_text(), flags=re.M):
        heading = part.partition("\n")[0]
        out[heading] = [(m.group(1), m.group(2)) for m in FENCE.finditer(part)]
    return out


def code(heading: str, language: str = "python") -> list[str]:
    found = [text for lang, text in sections()[heading] if lang == language]
    assert found, f"no {language} block under {heading!r} in {PAGE.name}"
    return found


class Site:
    """A directory laid out as the page assumes: ``policies/``, ``jwks.json``, keys."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        shutil.copytree(POLICIES, root / "policies")
        (watch,) = code("## WebSockets", "yaml")
        name = watch.partition("\n")[0].removeprefix("# ")  # "# policies/customer-watch.yaml"
        (root / name).write_text(watch)
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        (root / "jwks.json").write_text(
            json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256"}]})
        )
        key = base64.urlsafe_b64encode(b"t" * 32).decode().rstrip("=")
        monkeypatch.setenv("ZEROTRUST_TOKENIZE_KEYS", f"k1:{key}")
        monkeypatch.chdir(root)

    def run(self, *headings: str) -> dict[str, Any]:
        """Execute the set-up, then the Python blocks under ``headings``, in one namespace."""
        namespace: dict[str, Any] = {"__name__": "integration_page"}
        for heading in ("## Shared set-up", *headings):
            for block in code(heading):
                exec(compile(block, f"{PAGE.name} {heading}", "exec"), namespace)
        return namespace

    def bearer(
        self, department: str = "support", roles: tuple[str, ...] = ("agent",)
    ) -> dict[str, str]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "u-anna",
            "iat": now,
            "exp": now + 300,
            "roles": list(roles),
            "department": department,
            "amr": ["pwd", "mfa"],
        }
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "k1"})
        return {"authorization": f"Bearer {token}"}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    return Site(tmp_path, monkeypatch)


def test_websocket_walkthrough_runs_as_written(site: Site) -> None:
    page = site.run("## ASGI middleware", "## WebSockets")
    client = TestClient(page["app"])
    with client.websocket_connect("/customers/c-1001/live", headers=site.bearer()) as ws:
        change = ws.receive_json()
    assert change["id"] == "c-1001" and change["card_number"] == "****"

    # a handshake without a token, or from another department, never reaches the handler
    with pytest.raises(WebSocketDenialResponse) as refused:
        client.websocket_connect("/customers/c-1001/live").__enter__()
    assert refused.value.status_code == 401
    with pytest.raises(WebSocketDenialResponse) as refused:
        client.websocket_connect(
            "/customers/c-1001/live", headers=site.bearer(department="billing")
        ).__enter__()
    assert refused.value.status_code == 403


def test_fastapi_section_runs_as_written(site: Site) -> None:
    client = TestClient(site.run("## ASGI middleware")["app"])
    r = client.get("/customers/c-1001", headers=site.bearer())
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    assert client.get("/customers/c-1001").status_code == 401


def test_flask_section_runs_as_written(site: Site) -> None:
    client = site.run("## WSGI middleware: Flask")["app"].test_client()
    r = client.get("/customers/c-1001", headers=site.bearer())
    assert r.status_code == 200 and r.json["card_number"] == "****"
    assert (
        client.get("/customers/c-1001", headers=site.bearer(department="billing")).status_code
        == 403
    )


def test_require_section_defines_a_guarded_function(site: Site) -> None:
    page = site.run("## Plain functions: `@require`")
    with pytest.raises(NoDecisionError):  # outside a request: no subject, nothing runs
        page["export_customers"]("support")
    assert issubclass(page["StepUpRequired"], AccessDenied)


def test_decision_log_section_runs_as_written(site: Site) -> None:
    log = site.run("## What the decision log gets")["log"]
    pdp = PolicyDecisionPoint.from_path("policies/", decision_log=log)
    pdp.evaluate(
        {
            "subject": {"id": "u-anna"},
            "action": {"name": "read"},
            "resource": {"type": "customer_record", "id": "c-1001"},
            "context": {"path": "/customers/c-1001", "path_params": {"token": "s3cret"}},
        }
    )
    log.close()
    (line,) = Path("decisions.jsonl").read_text().splitlines()
    assert "c-1001" not in line and "s3cret" not in line


def test_django_section_is_valid_python() -> None:
    # Django needs a settings module to run; the page's blocks must at least parse
    for block in code("## WSGI middleware: Django"):
        compile(block, "django", "exec")
