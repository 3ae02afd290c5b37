"""Server configuration: one frozen object, checked whole before the server starts.

Validated with pydantic v2 (not attrs + cattrs): one model gives the checks, the JSON
Schema published for editors (``model_json_schema``) and the keys the environment and
the command line accept, so the three cannot drift apart; with attrs + cattrs the
schema would be written by hand beside the classes. pydantic's own messages are never
shown: each problem becomes one line naming the key (``identity.leeway_seconds: must
be a number >= 0, not 'x'``), and a secret's value is never quoted.

A server that cannot authenticate its callers must not start by accident, so a
configuration without a bearer secret is refused unless ``insecure_local`` says,
explicitly, that only loopback callers are served. Reading the file, the environment
and the flags is :mod:`zerotrust.server.settings`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from zerotrust.policy.json_data import load_json
from zerotrust.policy.located import YamlProblem, load_documents
from zerotrust.server.behaviorconfig import REDIS_SCHEMES, BehaviorSection
from zerotrust.server.configbase import Loc, Section, ServerConfigError, problem

__all__ = [
    "MIN_PAGING_SECRET_LENGTH",
    "MIN_SECRET_LENGTH",
    "BehaviorSection",
    "DeviceConfig",
    "IdentityConfig",
    "SearchDatabaseConfig",
    "SearchResourceConfig",
    "ServerConfig",
    "ServerConfigError",
    "read_structured",
]

MIN_SECRET_LENGTH = 16
#: 32 random bytes written in base64 (``openssl rand -base64 32`` prints 44 characters).
MIN_PAGING_SECRET_LENGTH = 43
#: The longest ``request_timeout_seconds``: beyond an hour a deadline protects nothing.
MAX_TIMEOUT_SECONDS = 3600
# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")
_PRINTABLE = re.compile(r"[\x21-\x7e]+\Z")


def _as_tuple(value: Any) -> Any:
    """One string or a list of them, as a tuple; anything else is left for the check."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(value)
    return value


def _url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise problem("must be an https URL (http only to loopback)")
    return value


def _base_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or any(c in value for c in "?#"):
        raise problem("must be an http(s) URL without query or fragment")
    return value


def _bearer_secret(value: str) -> str:
    # Never quote the secret, nor any character of it: this message is logged.
    if len(value) < MIN_SECRET_LENGTH:
        raise problem(f"must be a string of at least {MIN_SECRET_LENGTH} characters")
    if not _B64TOKEN.match(value):
        raise problem(
            "must be an RFC 6750 token: ASCII letters, digits and - . _ ~ + / "
            "(then = padding); no whitespace or other characters"
        )
    return value


def _paging_secret(value: str) -> str:
    if len(value) < MIN_PAGING_SECRET_LENGTH or not _PRINTABLE.match(value):
        raise problem(
            f"must be at least {MIN_PAGING_SECRET_LENGTH} printable ASCII characters "
            "without spaces: 32 random bytes in base64, as `openssl rand -base64 32` prints"
        )
    return value


_STRING_OR_LIST = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}},
    ]
}
Text = Annotated[str, Field(min_length=1)]
#: One string or a list of them (a tuple once read).
Strings = Annotated[tuple[Text, ...], BeforeValidator(_as_tuple), WithJsonSchema(_STRING_OR_LIST)]
Url = Annotated[str, AfterValidator(_url)]
Count = Annotated[int, Field(ge=1)]
FilePath = Annotated[str, Field(min_length=1, json_schema_extra={"format": "path"})]
Secret = Annotated[str, AfterValidator(_bearer_secret)]


def _key_source(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    given = [n for n in ("jwks_url", "jwks_file") if data.get(n) is not None]
    if len(given) != 1:
        return [((), "needs exactly one of jwks_url and jwks_file")]
    return []


class DeviceConfig(Section):
    """Where device posture attestations come from (``identity.device`` in the file).

    The MDM / EDR service is its own issuer with its own keys, never the identity
    provider's. ``max_age`` bounds the attestation's age in seconds; ``audiences``, when
    given, must match its ``aud``; ``subject_claim`` binds it to the verified user.
    """

    issuer: Text = Field(description="the attestations' `iss`, compared exactly")
    jwks_url: Url | None = Field(None, description="the issuer's keys (https)")
    jwks_file: FilePath | None = Field(None, description="the issuer's keys, read at start")
    algorithms: Strings | None = Field(None, description="signature algorithms accepted")
    audiences: Annotated[Strings, Field(alias="audience", description="accepted `aud`")] = ()
    max_age: float = Field(
        3600.0, gt=0, alias="max_age_seconds", description="oldest attestation (seconds)"
    )
    leeway: float = Field(30.0, ge=0, alias="leeway_seconds", description="clock skew (s)")
    typ: Text | None = Field(None, description="required JOSE `typ` header")
    subject_claim: Text = Field("user_sub", description="claim binding it to the user")

    @classmethod
    def _cross(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        return _key_source(data)


class IdentityConfig(Section):
    """How the server verifies the user token a PEP forwards (``identity`` in the file).

    A description only: :func:`zerotrust.server.identity.build_identity` turns it into
    the library's ``IdentityResolver``. ``issuer`` is compared exactly with ``iss``;
    keys come from ``jwks_url`` (fetched and cached) or ``jwks_file`` (read at start),
    exactly one of them. ``subject_type`` is the ``subject.type`` of verified subjects,
    which a PEP's ``subject.type``, when sent, must equal.
    """

    issuer: Text = Field(description="the tokens' `iss`, compared exactly")
    audiences: Annotated[
        Strings, Field(alias="audience", min_length=1, description="accepted `aud` values")
    ]
    jwks_url: Url | None = Field(None, description="the identity provider's keys (https)")
    jwks_file: FilePath | None = Field(None, description="the provider's keys, read at start")
    algorithms: Strings | None = Field(None, description="signature algorithms accepted")
    roles_from: Strings = Field(("roles",), description="claims (dotted) holding roles")
    groups_from: Strings = Field(("groups",), description="claims (dotted) holding groups")
    required_claims: Strings = Field((), description="claims every token must have")
    leeway: float = Field(30.0, ge=0, alias="leeway_seconds", description="clock skew (s)")
    typ: Text | None = Field(None, description="required JOSE `typ` header")
    subject_type: Text = Field("user", description="`subject.type` of verified subjects")
    device: DeviceConfig | None = Field(None, description="device posture attestations")

    @classmethod
    def _cross(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        return _key_source(data)


def _some_types(value: dict[str, Any]) -> dict[str, Any]:
    if not value:
        raise problem("must map at least one resource type to its table")
    return value


class SearchResourceConfig(Section):
    """One resource type's table for plan-backed search: ``id`` is the column of
    ``resource.id``, ``properties`` maps each property name to its column."""

    table: Text = Field(description="the table holding this type's resources")
    id: Text = Field("id", description="the column of resource.id")
    properties: dict[Text, Text] = Field(
        default_factory=dict, description="property name -> column"
    )


class SearchDatabaseConfig(Section):
    """Where resource search finds its candidates: a database the plan's filter runs in
    (``search_database`` in the file). ``url`` is an SQLAlchemy URL; ``resources`` maps
    a resource type to its table; ``pool_size``: connections kept open."""

    secret_keys: ClassVar[frozenset[str]] = frozenset({"url"})

    url: Text = Field(repr=False, description="SQLAlchemy database URL")
    resources: Annotated[dict[Text, SearchResourceConfig], AfterValidator(_some_types)] = Field(
        description="resource type -> its table, id and property columns"
    )
    pool_size: Count = Field(2, description="database connections kept open")


def _memory() -> BehaviorSection:
    defaults: dict[str, Any] = {}
    return BehaviorSection(**defaults)


class ServerConfig(Section):
    """How the AuthZEN server behaves. Every field has a safe default except the secret.

    ``bearer_secrets``: accepted PEP bearer tokens (several, so they can be rotated).
    ``insecure_local``: serve without a secret, to loopback clients only (development).
    ``include_reasons``: put matched rules, risk and errors in the response context;
    switch off for PEPs that should not learn how the policies are written.
    ``schema_validation``: requests checked against the policies' attribute schemas:
    ``report`` records a mismatch in the decision, ``enforce`` answers 400 naming the
    field (nothing is decided), ``off`` skips the check.
    ``entities_file``: subjects, resources and actions for the search APIs; without it
    they come from the ``entities`` key of the policy data.
    ``base_url``: the ``policy_decision_point`` identifier published in the metadata;
    without it the URL the caller used is reflected.
    ``request_timeout``: seconds a request may take once the app has its headers:
    reading the body (408 past it) and deciding (503); ``zerotrust serve`` also gives
    the headers this long to arrive.
    ``max_requests_in_flight``: API requests being read or decided at once; beyond it
    the server answers 503 with ``Retry-After`` without reading the body. A decision
    still running after its request timed out keeps its place until it ends.
    ``max_connections``: open connections ``zerotrust serve`` holds at most (lowered to
    what the open-file limit allows); beyond it the longest-idle one is closed.
    ``max_connections_per_address``: of those, how many one client address may hold
    (an IPv6 /64 counts as one address); None for no share of its own. Behind a proxy
    or NAT every client shares the proxy's address: leave it out there.
    ``decision_threads``: decisions running at once, each in a worker thread; the
    others wait for a free thread within their timeout.
    ``decision_log``: a JSON-lines file that ``zerotrust serve`` logs decisions to;
    ``decision_log_sink``: ``file`` (that file), ``stdout`` (JSON lines on standard
    output) or ``logging`` (the ``zerotrust.decisions`` logger); ``decision_log_redact``:
    paths removed from every line (``subject.properties.email``);
    ``decision_log_fsync``: force each line to disk before the answer.
    ``log_level``, ``log_format``: the server's own log lines (``text`` or ``json``).
    ``watch``: reload the policies when their files change (after ``watch_debounce_ms``
    of quiet); ``SIGHUP`` reloads them too. ``tracing``: OpenTelemetry spans (the
    ``otel`` extra, exported by the global tracer provider). ``ready_needs_store``:
    ``/readyz`` is ready only while the behaviour store answers.
    ``behavior``: the behaviour store of ``zerotrust serve`` and its
    :class:`~zerotrust.behavior.config.BehaviorConfig` (``behavior_redis_url`` is the
    old spelling of ``behavior.store``).
    ``paging_secret``: the key of search page tokens, shared by replicas so a page from
    one continues on another; without it each process has its own.
    ``search_database``: resource search runs the plan's filter in this database for
    the types it maps (see :class:`SearchDatabaseConfig`), and decides its rows one by
    one where a plan cannot be a filter.
    ``identity``: verify a user token the PEP forwards (see :class:`IdentityConfig`);
    the PDP given to :func:`create_app` must then be built with the matching ``identity=``.
    ``policies``, ``host``, ``port``, ``workers``: what ``zerotrust serve`` serves where.
    """

    secret_keys: ClassVar[frozenset[str]] = frozenset({"bearer_secrets", "paging_secret"})

    bearer_secrets: Annotated[
        tuple[Secret, ...],
        BeforeValidator(_as_tuple),
        WithJsonSchema(_STRING_OR_LIST),
        Field(repr=False, description="accepted PEP bearer tokens (rotate by listing two)"),
    ] = ()
    bearer_secrets_file: FilePath | None = Field(
        None, description="a file of secrets, one a line, added to bearer_secrets"
    )
    insecure_local: bool = Field(False, description="no PEP authentication; loopback only")
    include_reasons: bool = Field(True, description="send reasons, risk and errors")
    schema_validation: Literal["off", "report", "enforce"] = Field(
        "report", description="requests against the attribute schemas: off, report or enforce"
    )
    max_body_bytes: Count = Field(1024 * 1024, description="largest request body")
    request_timeout: float = Field(
        5.0,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        alias="request_timeout_seconds",
        description="seconds to read the body and decide",
    )
    max_requests_in_flight: Count = Field(256, description="API requests at once")
    max_connections: Count = Field(4096, description="open connections at most")
    max_connections_per_address: Count | None = Field(
        None, description="open connections one client address may hold"
    )
    decision_threads: Count = Field(2, description="decisions running at once")
    max_evaluations: Count = Field(1000, description="items in one batch at most")
    search_max_results: Count = Field(1000, description="results in one search page")
    entities_file: FilePath | None = Field(
        None, alias="entities", description="entities file for the search APIs"
    )
    base_url: Annotated[str, AfterValidator(_base_url)] | None = Field(
        None, description="the metadata's policy_decision_point"
    )
    decision_log: FilePath | None = Field(None, description="JSON-lines decision log file")
    decision_log_sink: Literal["file", "stdout", "logging"] = Field(
        "file", description="file (decision_log), stdout or logging (zerotrust.decisions)"
    )
    decision_log_redact: Strings = Field(
        (), description="paths removed from every decision-log line"
    )
    decision_log_fsync: bool = Field(False, description="force each decision-log line to disk")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="level of the server's own log lines"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="the server's log lines as text or one JSON object a line"
    )
    watch: bool = Field(False, description="reload the policies when their files change")
    watch_debounce_ms: int = Field(
        500, ge=0, le=60_000, description="quiet after a change before reloading (ms)"
    )
    tracing: bool = Field(False, description="OpenTelemetry spans (the otel extra)")
    ready_needs_store: bool = Field(
        True, description="/readyz is ready only while the behaviour store answers"
    )
    behavior: BehaviorSection = Field(
        default_factory=_memory, description="the behaviour store and its settings"
    )
    paging_secret: Annotated[str, AfterValidator(_paging_secret)] | None = Field(
        None, repr=False, description="key of search page tokens, shared by replicas"
    )
    paging_secret_file: FilePath | None = Field(None, description="a file holding paging_secret")
    identity: IdentityConfig | None = Field(None, description="verify the user's token")
    search_database: SearchDatabaseConfig | None = Field(
        None, description="database for plan-backed resource search"
    )
    policies: FilePath | None = Field(None, description="policy file or directory")
    host: Text = Field("127.0.0.1", description="address to bind")
    port: int = Field(8080, ge=1, le=65535, description="port to bind")
    workers: int = Field(1, ge=1, le=64, description="processes serving the port")

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[Loc, str]]]:
        """Read the secret files; move ``behavior_redis_url`` to ``behavior.store``."""
        data = dict(data)
        located: list[tuple[Loc, str]] = []
        known = len(located)
        lines = _read_lines(data, "bearer_secrets_file", located)
        if lines == [] and len(located) == known:
            # An empty file must not leave the server without a secret: it would then
            # serve every loopback caller (a TLS proxy on the host) unauthenticated.
            located.append((("bearer_secrets_file",), "holds no secret (one a line)"))
        if lines:
            given = _as_tuple(data.get("bearer_secrets", ()))
            if isinstance(given, tuple):  # else refused as bearer_secrets's own problem
                data["bearer_secrets"] = given + tuple(lines)
        lines = _read_lines(data, "paging_secret_file", located)
        if lines is not None:
            if data.get("paging_secret") is not None:
                located.append((("paging_secret_file",), "give paging_secret or this, not both"))
            elif len(lines) != 1:
                located.append((("paging_secret_file",), "must hold one line, the secret"))
            else:
                data["paging_secret"] = lines[0]
        url = data.pop("behavior_redis_url", None)
        behavior = data.get("behavior")
        if url is None:
            return data, located
        if isinstance(behavior, BehaviorSection):
            behavior = behavior.given()
        behavior = {} if behavior is None else behavior
        if not isinstance(behavior, Mapping):
            return data, located  # refused as behavior's own problem
        where: Loc = ("behavior_redis_url",)
        if "store" in behavior:
            located.append((where, "the old spelling of behavior.store: give one of them"))
        elif not isinstance(url, str) or not url.startswith(REDIS_SCHEMES):
            located.append((where, "must be a " + ", ".join(REDIS_SCHEMES) + " URL"))
        else:
            data["behavior"] = {**behavior, "store": url}
        return data, located

    @classmethod
    def _cross(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        found: list[tuple[Loc, str]] = []
        level = data.get("log_level", "INFO")
        if data.get("decision_log_sink") == "logging" and level in ("WARNING", "ERROR", "CRITICAL"):
            found.append(
                (
                    ("decision_log_sink",),
                    f"logging writes decisions at INFO, which log_level {level} hides: "
                    "lower log_level to INFO, or use file or stdout",
                )
            )
        return found + cls._secret_problems(data)

    @classmethod
    def _secret_problems(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        secrets = data.get("bearer_secrets")
        insecure = data.get("insecure_local")
        if not secrets and insecure is not True and not data.get("bearer_secrets_file"):
            # (a given file adds its secrets, or is refused as empty or unreadable)
            return [
                (
                    (),
                    "no bearer secret configured: set bearer_secrets (or bearer_secrets_file), "
                    "or run with --insecure-local for loopback-only development",
                )
            ]
        return []

    @property
    def behavior_redis_url(self) -> str | None:
        """The Redis URL of ``behavior.store``; None for the memory store."""
        return self.behavior.redis_url


def _read_lines(
    data: Mapping[str, Any], key: str, located: list[tuple[Loc, str]]
) -> list[str] | None:
    """The non-blank lines of the file ``data[key]`` names (None: no file given)."""
    name = data.get(key)
    if not isinstance(name, str) or not name:
        return None  # absent, or refused as the key's own problem
    try:
        text = Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # The reason only (the OS's words): never a line of the file.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
        located.append(((key,), f"cannot read {name}: {reason}"))
        return []
    return [stripped for raw in text.splitlines() if (stripped := raw.strip())]


def read_structured(file: Path, what: str) -> Any:
    """The plain value in ``file`` (JSON when it ends ``.json``, else YAML), ``None`` when
    it is empty. Raises :class:`ServerConfigError` (one line, with file:line:column).

    The policy loader's readers, not ``yaml.safe_load``: that one recurses once per
    nesting level and expands aliases without bound, so a small hostile file could
    exhaust the stack or memory. These hold every file to one set of limits (depth,
    values, alias expansion) and report positions.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ServerConfigError([f"cannot read {what} {file}: {exc}"]) from exc
    try:
        if file.suffix == ".json":
            value, _ = load_json(text)
            return value
        documents = load_documents(text)
    except YamlProblem as exc:
        raise ServerConfigError([f"{file}:{exc.line}:{exc.column}: {exc.message}"]) from exc
    if len(documents) > 1:
        second = documents[1]
        raise ServerConfigError(
            [f"{file}:{second.line}:{second.column}: a {what} holds one YAML document, not several"]
        )
    return documents[0].plain() if documents else None
