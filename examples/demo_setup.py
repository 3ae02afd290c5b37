"""Shared set-up of the FastAPI and Flask examples: data, routes, keys, the PDP.

Configuration comes from the environment; whatever is not configured falls back to a
demo. THE DEMO KEYS ARE GENERATED ON FIRST RUN into ``examples/demo-keys/`` (or
``$ZEROTRUST_DEMO_DIR``), are git-ignored and must never protect anything real: they
exist so that ``python -m examples.demo_setup token ...`` can mint test tokens.

Environment (all optional):
  ZEROTRUST_POLICIES          policy file or directory (default: policies/)
  ZEROTRUST_JWKS_FILE         the identity provider's JWKS, with ZEROTRUST_ISSUER and
                              ZEROTRUST_AUDIENCE; unset: the demo identity provider
  ZEROTRUST_DEVICE_JWKS_FILE  the MDM's JWKS, with ZEROTRUST_DEVICE_ISSUER
  ZEROTRUST_TOKENIZE_KEYS     kid:base64url[,kid:base64url...], first is current
  ZEROTRUST_TRUSTED_PROXIES   comma-separated addresses/networks of your proxies
  ZEROTRUST_COUNTRY_HEADER    header a trusted proxy sets (default: cf-ipcountry)
  ZEROTRUST_DECISION_LOG      JSON-lines decision log file (default: log to stderr)
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from zerotrust import JsonLinesLog, LoggingLog, PolicyDecisionPoint
from zerotrust.identity import DeviceVerifier, Issuer, JWTVerifier, StaticKeys
from zerotrust.web import HttpRequest, RouteTable, Target, Tokenizer, WebConfig

ROOT = Path(__file__).resolve().parent.parent
DEMO_ISSUER = "https://idp.demo.invalid"
DEMO_MDM = "https://mdm.demo.invalid"
DEMO_AUDIENCE = "customer-api"

CUSTOMERS: dict[str, dict[str, Any]] = {
    "c-1001": {
        "id": "c-1001",
        "name": "Ada Berg",
        "email": "ada.berg@example.com",
        "phone": "+49 30 5550101",
        "card_number": "4111111111111111",
        "ssn": "123-45-6789",
        "owner_dept": "support",
        "sensitivity": 2,
    },
    "c-1002": {
        "id": "c-1002",
        "name": "Bo Lind",
        "email": "bo.lind@example.com",
        "phone": "+49 30 5550102",
        "card_number": "5500000000000004",
        "ssn": "987-65-4321",
        "owner_dept": "support",
        "sensitivity": 3,
    },
    "c-1003": {
        "id": "c-1003",
        "name": "Cleo Marsh",
        "email": "cleo.marsh@example.com",
        "phone": "+49 30 5550103",
        "card_number": "340000000000009",
        "ssn": "555-12-3456",
        "owner_dept": "support",
        "sensitivity": 4,
    },
    "c-5150": {
        "id": "c-5150",
        "name": "Dev Okafor",
        "email": "dev.okafor@example.com",
        "phone": "+49 40 5550150",
        "card_number": "6011000000000004",
        "ssn": "222-33-4444",
        "owner_dept": "billing",
        "sensitivity": 2,
    },
}

ROUTES = RouteTable(
    {
        "GET /customers/{id}": ("customer_record", "read"),
        "PATCH /customers/{id}": ("customer_record", "update"),
        "GET /departments/{dept}/export": ("customer_record", "export", "dept"),
    }
)


def resolve(http: HttpRequest) -> Target | None:
    """Route table first, then the attributes the policies need, from the data itself."""
    target = ROUTES.match(http)
    if target is None:
        return None
    if target.action == "export":
        dept = target.resource_id
        count = sum(1 for c in CUSTOMERS.values() if c["owner_dept"] == dept)
        props = {"owner_dept": dept, "sensitivity": 3}
        return Target(
            target.resource_type,
            target.action,
            dept,
            props,
            {"records": count},
            target.route,
        )
    record = CUSTOMERS.get(target.resource_id or "")
    if record is None:
        return target  # no attributes: the policies refuse, and nobody learns it is missing
    props = {"owner_dept": record["owner_dept"], "sensitivity": record["sensitivity"]}
    return Target(target.resource_type, target.action, target.resource_id, props, {}, target.route)


def demo_dir() -> Path:
    return Path(os.environ.get("ZEROTRUST_DEMO_DIR") or ROOT / "examples" / "demo-keys")


def _demo_key(name: str) -> ec.EllipticCurvePrivateKey:
    """The demo private key ``name``, created (mode 0600) on first use."""
    path = demo_dir() / f"{name}-private.pem"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        jwks = {"keys": [{**jwk, "kid": f"demo-{name}", "alg": "ES256", "use": "sig"}]}
        (demo_dir() / f"{name}-jwks.json").write_text(json.dumps(jwks, indent=2))
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise SystemExit(f"{path} is not an EC private key")
    return loaded


def _issuer(jwks_var: str, issuer_var: str, demo_name: str, demo_issuer: str) -> Issuer:
    jwks_file = os.environ.get(jwks_var)
    if jwks_file:
        return Issuer(os.environ[issuer_var], StaticKeys.from_jwks_file(jwks_file))
    _demo_key(demo_name)
    return Issuer(demo_issuer, StaticKeys.from_jwks_file(demo_dir() / f"{demo_name}-jwks.json"))


def _tokenizer() -> Tokenizer:
    if os.environ.get("ZEROTRUST_TOKENIZE_KEYS"):
        return Tokenizer.from_env()
    path = demo_dir() / "tokenize.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
    key = base64.urlsafe_b64decode(path.read_text().strip())
    return Tokenizer({"demo1": key}, current="demo1")


def build_pdp() -> PolicyDecisionPoint:
    log_file = os.environ.get("ZEROTRUST_DECISION_LOG")
    if log_file:
        sink: JsonLinesLog | LoggingLog = JsonLinesLog(log_file)
    else:
        # Decisions to stderr: LoggingLog counts a decision as lost when nobody listens,
        # and neither Python's defaults nor uvicorn's enable INFO for this logger.
        decisions = logging.getLogger("zerotrust.decisions")
        if not decisions.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("decision %(message)s"))
            decisions.addHandler(handler)
        decisions.setLevel(logging.INFO)
        decisions.propagate = False
        sink = LoggingLog(decisions)
    policies = os.environ.get("ZEROTRUST_POLICIES") or ROOT / "policies"
    return PolicyDecisionPoint.from_path(policies, decision_log=sink)


def build_config() -> WebConfig:
    proxies = [p for p in os.environ.get("ZEROTRUST_TRUSTED_PROXIES", "").split(",") if p.strip()]
    audience = os.environ.get("ZEROTRUST_AUDIENCE", DEMO_AUDIENCE)
    return WebConfig(
        jwt=JWTVerifier(
            issuers=[_issuer("ZEROTRUST_JWKS_FILE", "ZEROTRUST_ISSUER", "idp", DEMO_ISSUER)],
            audiences=[audience],
        ),
        device=DeviceVerifier(
            _issuer("ZEROTRUST_DEVICE_JWKS_FILE", "ZEROTRUST_DEVICE_ISSUER", "mdm", DEMO_MDM)
        ),
        trusted_proxies=[p.strip() for p in proxies],
        country_header=os.environ.get("ZEROTRUST_COUNTRY_HEADER", "cf-ipcountry"),
        tokenizer=_tokenizer(),
    )


def demo_token(
    sub: str,
    *,
    roles: list[str],
    department: str,
    amr: list[str],
    lifetime: int = 900,
) -> str:
    """An access token from the demo identity provider."""
    now = int(time.time())
    claims = {
        "iss": DEMO_ISSUER,
        "sub": sub,
        "aud": DEMO_AUDIENCE,
        "iat": now,
        "exp": now + lifetime,
        "auth_time": now,
        "roles": roles,
        "department": department,
        "amr": amr,
    }
    return jwt.encode(claims, _demo_key("idp"), algorithm="ES256", headers={"kid": "demo-idp"})


def demo_attestation(device_id: str, user: str, *, managed: bool, compliant: bool) -> str:
    """A device posture attestation from the demo MDM."""
    now = int(time.time())
    claims = {
        "iss": DEMO_MDM,
        "sub": device_id,
        "user_sub": user,
        "iat": now,
        "exp": now + 900,
        "managed": managed,
        "compliant": compliant,
    }
    return jwt.encode(claims, _demo_key("mdm"), algorithm="ES256", headers={"kid": "demo-mdm"})


def main(argv: list[str] | None = None) -> None:
    """``token`` / ``attest``: print a demo token or attestation for curl."""
    parser = argparse.ArgumentParser(prog="python -m examples.demo_setup")
    sub = parser.add_subparsers(dest="command", required=True)
    tok = sub.add_parser("token")
    tok.add_argument("--sub", default="u-anna")
    tok.add_argument("--roles", default="agent")
    tok.add_argument("--department", default="support")
    tok.add_argument("--amr", default="pwd,mfa")
    att = sub.add_parser("attest")
    att.add_argument("--device", default="d-17")
    att.add_argument("--user", default="u-anna")
    att.add_argument("--unmanaged", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "token":
        print(
            demo_token(
                args.sub,
                roles=args.roles.split(","),
                department=args.department,
                amr=args.amr.split(","),
            )
        )
    else:
        managed = not args.unmanaged
        print(demo_attestation(args.device, args.user, managed=managed, compliant=managed))


if __name__ == "__main__":
    main(sys.argv[1:])
