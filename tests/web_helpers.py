"""Keys, tokens, policies and a recording decision log for the web middleware tests.

Keys are generated per test session with ``cryptography``; tokens are signed with PyJWT.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from zerotrust import AccessRequest, Decision, PolicyDecisionPoint
from zerotrust.identity import DeviceVerifier, Issuer, JWTVerifier, StaticKeys
from zerotrust.web import RouteTable, Target, Tokenizer, WebConfig

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
ISSUER = "https://idp.test.invalid"
MDM = "https://mdm.test.invalid"
AUDIENCE = "customer-api"
# Monday 2 March 2026, 11:00 in Berlin: inside business hours, so no off-hours signal.
NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
TOKENIZER = Tokenizer({"k1": b"k" * 32, "k0": b"o" * 32}, current="k1")

CUSTOMERS: dict[str, dict[str, Any]] = {
    "c-1001": {
        "id": "c-1001",
        "name": "Ada Berg",
        "email": "ada@example.com",
        "card_number": "4111111111111111",
        "ssn": "123-45-6789",
        "owner_dept": "support",
        "sensitivity": 2,
    },
    "c-1002": {
        "id": "c-1002",
        "name": "Bo Lind",
        "email": "bo@example.com",
        "card_number": "5500000000000004",
        "ssn": "987-65-4321",
        "owner_dept": "support",
        "sensitivity": 3,
    },
    "c-5150": {
        "id": "c-5150",
        "name": "Dev Okafor",
        "email": "dev@example.com",
        "card_number": "6011000000000004",
        "ssn": "222-33-4444",
        "owner_dept": "billing",
        "sensitivity": 2,
    },
}


def customer_properties(kind: str, rid: str | None, http: Any) -> Mapping[str, Any] | None:
    record = CUSTOMERS.get(rid or "")
    if record is None:
        return None
    return {"owner_dept": record["owner_dept"], "sensitivity": record["sensitivity"]}


ROUTES = RouteTable(
    {
        "GET /customers/{id}": ("customer_record", "read"),
        "PATCH /customers/{id}": ("customer_record", "update"),
        "GET /departments/{dept}/export": ("customer_record", "export", "dept"),
    },
    properties=customer_properties,
)


def resolve(http: Any) -> Target | None:
    target = ROUTES(http)
    if not isinstance(target, Target) or target.action != "export":
        return target  # type: ignore[return-value]  # properties are sync here
    dept = target.resource_id
    return Target(
        target.resource_type,
        target.action,
        dept,
        {"owner_dept": dept, "sensitivity": 3},
        {"records": 2},
        target.route,
    )


@functools.cache
def idp_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def mdm_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def rogue_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _issuer(name: str, key: ec.EllipticCurvePrivateKey, kid: str) -> Issuer:
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return Issuer(name, StaticKeys.from_jwks({"keys": [{**jwk, "kid": kid, "alg": "ES256"}]}))


def verifier() -> JWTVerifier:
    return JWTVerifier(issuers=[_issuer(ISSUER, idp_key(), "idp-1")], audiences=[AUDIENCE])


def device_verifier() -> DeviceVerifier:
    return DeviceVerifier(_issuer(MDM, mdm_key(), "mdm-1"))


def token(
    sub: str = "u-anna",
    *,
    roles: tuple[str, ...] = ("agent",),
    department: str = "support",
    amr: tuple[str, ...] = ("pwd", "mfa"),
    key: ec.EllipticCurvePrivateKey | None = None,
    **over: Any,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": sub,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "roles": list(roles),
        "department": department,
        "amr": list(amr),
        **over,
    }
    return jwt.encode(claims, key or idp_key(), algorithm="ES256", headers={"kid": "idp-1"})


def attestation(user: str, *, managed: bool = True, compliant: bool = True) -> str:
    now = int(time.time())
    claims = {
        "iss": MDM,
        "sub": "d-17",
        "user_sub": user,
        "iat": now,
        "exp": now + 600,
        "managed": managed,
        "compliant": compliant,
    }
    return jwt.encode(claims, mdm_key(), algorithm="ES256", headers={"kid": "mdm-1"})


def bearer(tok: str | None = None, **kw: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {tok or token(**kw)}"}


class RecordingLog:
    """A decision log that keeps every entry for the test to inspect."""

    def __init__(self) -> None:
        self.entries: list[tuple[Decision, AccessRequest, dict[str, Any]]] = []

    def emit(self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]) -> None:
        self.entries.append((decision, request, dict(extra)))

    @property
    def last(self) -> tuple[Decision, AccessRequest, dict[str, Any]]:
        return self.entries[-1]


WATERMARK_POLICY = """
policy: watermark-updates
target: {resources: [customer_record], actions: [update]}
obligation_types: [watermark]
rules:
  - id: allow-agent-update-with-watermark
    effect: allow
    when: "'agent' in subject.properties.roles"
    obligations:
      - {type: watermark, text: confidential}
"""


def shipped_pdp(
    log: RecordingLog | None = None, *, extra: str | None = None
) -> PolicyDecisionPoint:
    """The shipped policies (plus ``extra`` policy text), on a fixed business-hours clock."""
    texts = {p.name: p.read_text() for p in sorted(POLICIES.glob("*.yaml"))}
    texts = {k: v for k, v in texts.items() if not k.endswith("_test.yaml")}
    if extra is not None:
        texts["extra.yaml"] = extra
    return PolicyDecisionPoint.from_texts(texts, clock=lambda: NOW, decision_log=log)


# A customer_record schema the shipped test routes never meet: they send no ``region``.
CUSTOMER_SCHEMA = """\
resources:
  customer_record:
    properties:
      owner_dept: {type: string}
      sensitivity: {type: integer}
      region: {type: string}
    required: [region]
validation: permissive  # (the shipped policies read owner_dept, optional here, unguarded)
"""
REGION_MISSING = "resource.properties.region: is required and missing"


def schema_pdp(mode: str, log: RecordingLog | None = None) -> PolicyDecisionPoint:
    """The shipped policies with :data:`CUSTOMER_SCHEMA`, checked with ``mode``."""
    texts = {p.name: p.read_text() for p in sorted(POLICIES.glob("*.yaml"))}
    texts = {k: v for k, v in texts.items() if not k.endswith(("_test.yaml", ".schema.yaml"))}
    texts["customer.schema.yaml"] = CUSTOMER_SCHEMA  # instead of the shipped schema
    return PolicyDecisionPoint.from_texts(
        texts, clock=lambda: NOW, decision_log=log, schema_validation=mode
    )


def assert_invalid_request(status: int, content_type: str, body: Mapping[str, Any]) -> None:
    """The PEP's answer to a request the PDP refused for its attributes (``enforce``)."""
    assert status == 400, body
    assert content_type == "application/problem+json"
    assert (body["status"], body["code"], body["detail"]) == (
        400,
        "invalid_request",
        REGION_MISSING,
    )


def web_config(**over: Any) -> WebConfig:
    options: dict[str, Any] = {
        "jwt": verifier(),
        "device": device_verifier(),
        "tokenizer": TOKENIZER,
        "country_header": "x-country",
    }
    options.update(over)
    return WebConfig(**options)


def django_setup() -> None:
    """Django configured from ``django_site.settings``, once per process, with its SQLite
    database migrated and the customers loaded: only the Django tests call this."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    from django_site import settings as site

    settings.configure(**{k: getattr(site, k) for k in dir(site) if k.isupper()})
    django.setup()
    from django.db import connection
    from django_site.customers.models import Customer

    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    atexit.register(connection.creation.destroy_test_db, verbosity=0)
    Customer.objects.bulk_create(Customer(**record) for record in CUSTOMERS.values())


@contextlib.contextmanager
def django_urls(urlpatterns: list[Any]) -> Iterator[None]:
    """Django (see :func:`django_setup`) routing to ``urlpatterns`` inside the block."""
    from django.test.utils import override_settings

    django_setup()
    with override_settings(ROOT_URLCONF=type("URLConf", (), {"urlpatterns": urlpatterns})):
        yield
