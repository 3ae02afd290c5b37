"""Server configuration: one frozen object, checked whole before the server starts.

A server that cannot authenticate its callers must not start by accident, so the
checks refuse a configuration without a bearer secret unless ``insecure_local``
says, explicitly, that only loopback callers are served.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from zerotrust.errors import ZeroTrustError
from zerotrust.policy.json_data import load_json
from zerotrust.policy.located import YamlProblem, load_documents

__all__ = [
    "MIN_SECRET_LENGTH",
    "DeviceConfig",
    "IdentityConfig",
    "ServerConfig",
    "ServerConfigError",
    "config_from_mapping",
    "load_config",
    "read_structured",
]

MIN_SECRET_LENGTH = 16
#: The longest ``request_timeout_seconds``: beyond an hour a deadline protects nothing.
MAX_TIMEOUT_SECONDS = 3600
# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")
_KEYS = frozenset(
    {
        "bearer_secrets",
        "bearer_secrets_file",
        "insecure_local",
        "include_reasons",
        "max_body_bytes",
        "request_timeout_seconds",
        "max_requests_in_flight",
        "max_connections",
        "max_connections_per_address",
        "decision_threads",
        "max_evaluations",
        "search_max_results",
        "entities",
        "base_url",
        "decision_log",
        "behavior_redis_url",
        "identity",
    }
)
_KEY_SOURCE_KEYS = frozenset({"issuer", "jwks_url", "jwks_file", "algorithms", "leeway_seconds"})
_IDENTITY_KEYS = _KEY_SOURCE_KEYS | {
    "audience",
    "roles_from",
    "groups_from",
    "required_claims",
    "typ",
    "subject_type",
    "device",
}
_DEVICE_KEYS = _KEY_SOURCE_KEYS | {"audience", "max_age_seconds", "typ", "subject_claim"}
_IDENTITY_RENAMES = {
    "audience": "audiences",
    "leeway_seconds": "leeway",
    "max_age_seconds": "max_age",
}


class ServerConfigError(ZeroTrustError, ValueError):
    """The server configuration is unusable; ``problems`` lists every reason.

    Raised by :func:`load_config` and when a :class:`ServerConfig` is built.
    """

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("invalid server configuration: " + "; ".join(self.problems))


def _strings(value: Any) -> Any:
    """One string or a list of them, as a tuple; anything else is left for the check."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def _optional_strings(value: Any) -> Any:
    return None if value is None else _strings(value)


@attrs.frozen
class DeviceConfig:
    """Where device posture attestations come from (``identity.device`` in the file).

    The MDM / EDR service is its own issuer with its own keys, never the identity
    provider's. ``max_age`` bounds the attestation's age in seconds; ``audiences``, when
    given, must match its ``aud``; ``subject_claim`` binds it to the verified user.
    """

    issuer: str
    jwks_url: str | None = None
    jwks_file: str | None = None
    algorithms: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_strings)
    audiences: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    max_age: float = 3600.0
    leeway: float = 30.0
    typ: str | None = None
    subject_claim: str = "user_sub"

    def __attrs_post_init__(self) -> None:
        problems = _check_keys(self, "identity.device")
        problems += _check_strings(self.audiences, "identity.device.audience", allow_empty=True)
        if not _positive(self.max_age):
            problems.append("identity.device.max_age_seconds must be a positive number")
        problems += _check_name(self.subject_claim, "identity.device.subject_claim")
        if problems:
            raise ServerConfigError(problems)


@attrs.frozen
class IdentityConfig:
    """How the server verifies the user token a PEP forwards (``identity`` in the file).

    A description only: :func:`zerotrust.server.identity.build_identity` turns it into
    the library's ``IdentityResolver``. ``issuer`` is compared exactly with ``iss``;
    keys come from ``jwks_url`` (fetched and cached) or ``jwks_file`` (read at start),
    exactly one of them. ``subject_type`` is the ``subject.type`` of verified subjects,
    which a PEP's ``subject.type``, when sent, must equal.
    """

    issuer: str
    audiences: tuple[str, ...] = attrs.field(converter=_strings)
    jwks_url: str | None = None
    jwks_file: str | None = None
    algorithms: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_strings)
    roles_from: tuple[str, ...] = attrs.field(default=("roles",), converter=_strings)
    groups_from: tuple[str, ...] = attrs.field(default=("groups",), converter=_strings)
    required_claims: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    leeway: float = 30.0
    typ: str | None = None
    subject_type: str = "user"
    device: DeviceConfig | None = None

    def __attrs_post_init__(self) -> None:
        problems = _check_keys(self, "identity")
        problems += _check_strings(self.audiences, "identity.audience")
        for name in ("roles_from", "groups_from"):
            problems += _check_strings(getattr(self, name), f"identity.{name}", allow_empty=True)
        problems += _check_strings(
            self.required_claims, "identity.required_claims", allow_empty=True
        )
        problems += _check_name(self.subject_type, "identity.subject_type")
        if self.device is not None and not isinstance(self.device, DeviceConfig):
            problems.append("identity.device must be a DeviceConfig")
        if problems:
            raise ServerConfigError(problems)


def _check_keys(config: IdentityConfig | DeviceConfig, where: str) -> list[str]:
    """What an issuer and its key source need; the library checks the rest when built."""
    problems = _check_name(config.issuer, f"{where}.issuer")
    sources = [n for n in ("jwks_url", "jwks_file") if getattr(config, n) is not None]
    if len(sources) != 1:
        problems.append(f"{where} needs exactly one of jwks_url and jwks_file")
    if config.jwks_url is not None and (
        not isinstance(config.jwks_url, str)
        or not config.jwks_url.startswith(("https://", "http://"))
    ):
        problems.append(f"{where}.jwks_url must be an https URL (http only to loopback)")
    if config.jwks_file is not None and not isinstance(config.jwks_file, str):
        problems.append(f"{where}.jwks_file must be a file path")
    if config.algorithms is not None:
        problems += _check_strings(config.algorithms, f"{where}.algorithms")
    leeway = config.leeway
    if not _number(leeway) or leeway < 0:
        problems.append(f"{where}.leeway_seconds must be a number >= 0")
    if config.typ is not None:
        problems += _check_name(config.typ, f"{where}.typ")
    return problems


def _check_strings(value: Any, name: str, *, allow_empty: bool = False) -> list[str]:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        return [f"{name} must be a non-empty string or a list of them"]
    if not value and not allow_empty:
        return [f"{name} must name at least one value"]
    return []


def _check_name(value: Any, name: str) -> list[str]:
    if not isinstance(value, str) or not value:
        return [f"{name} must be a non-empty string"]
    return []


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _number(value) and value > 0


@attrs.frozen
class ServerConfig:
    """How the AuthZEN server behaves. Every field has a safe default except the secret.

    ``bearer_secrets``: accepted PEP bearer tokens (several, so they can be rotated).
    ``insecure_local``: serve without a secret, to loopback clients only (development).
    ``include_reasons``: put matched rules, risk and errors in the response context;
    switch off for PEPs that should not learn how the policies are written.
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
    ``decision_log``: a JSON-lines file that ``zerotrust serve`` logs decisions to.
    ``behavior_redis_url``: the Redis behaviour store of ``zerotrust serve`` (shared by
    its workers and replicas), in place of one in memory per process.
    ``identity``: verify a user token the PEP forwards (see :class:`IdentityConfig`);
    the PDP given to :func:`create_app` must then be built with the matching ``identity=``.
    """

    bearer_secrets: tuple[str, ...] = attrs.field(default=(), converter=tuple, repr=False)
    insecure_local: bool = False
    include_reasons: bool = True
    max_body_bytes: int = 1024 * 1024
    request_timeout: float = 5.0
    max_requests_in_flight: int = 256
    max_connections: int = 4096
    max_connections_per_address: int | None = None
    decision_threads: int = 2
    max_evaluations: int = 1000
    search_max_results: int = 1000
    entities_file: str | None = None
    base_url: str | None = None
    decision_log: str | None = None
    behavior_redis_url: str | None = None
    identity: IdentityConfig | None = None

    def __attrs_post_init__(self) -> None:
        problems = _check(self)
        if problems:
            raise ServerConfigError(problems)


def _check(config: ServerConfig) -> list[str]:
    problems: list[str] = []
    for index, secret in enumerate(config.bearer_secrets):
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            problems.append(
                f"bearer secret #{index + 1} must be a string of at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        elif not _B64TOKEN.match(secret):
            # Never quote the secret, nor any character of it: this message is logged.
            problems.append(
                f"bearer secret #{index + 1} must be an RFC 6750 token: ASCII letters, "
                "digits and - . _ ~ + / (then = padding); no whitespace or other characters"
            )
    if config.behavior_redis_url is not None and (
        not isinstance(config.behavior_redis_url, str)
        or not config.behavior_redis_url.startswith(
            ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        )
    ):
        problems.append(
            "behavior_redis_url must be a redis://, rediss://, unix://, "
            "redis+cluster:// or rediss+cluster:// URL"
        )
    if not config.bearer_secrets and not config.insecure_local:
        problems.append(
            "no bearer secret configured: set bearer_secrets (or bearer_secrets_file), "
            "or run with --insecure-local for loopback-only development"
        )
    for name in (
        "max_body_bytes",
        "max_requests_in_flight",
        "max_connections",
        "decision_threads",
        "max_evaluations",
        "search_max_results",
    ):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{name} must be a positive whole number, not {value!r}")
    per_address = config.max_connections_per_address
    if per_address is not None and (
        isinstance(per_address, bool) or not isinstance(per_address, int) or per_address < 1
    ):
        problems.append(
            "max_connections_per_address must be a positive whole number (or left out for "
            f"no share per address), not {per_address!r}"
        )
    timeout = config.request_timeout
    if not _number(timeout) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
        problems.append(
            f"request_timeout_seconds must be a number of seconds above 0 and at most "
            f"{MAX_TIMEOUT_SECONDS}, not {timeout!r}"
        )
    for name in ("insecure_local", "include_reasons"):
        if not isinstance(getattr(config, name), bool):
            problems.append(f"{name} must be true or false")
    if config.base_url is not None and (
        not isinstance(config.base_url, str)
        or not config.base_url.startswith(("https://", "http://"))
        or any(c in config.base_url for c in "?#")
    ):
        problems.append("base_url must be an http(s) URL without query or fragment")
    if config.identity is not None and not isinstance(config.identity, IdentityConfig):
        problems.append("identity must be an IdentityConfig")
    return problems


def load_config(path: str | Path, **overrides: Any) -> ServerConfig:
    """Read a YAML or JSON config file; relative paths in it are relative to the file.

    ``overrides`` (keyword names of :class:`ServerConfig`) win over the file, so
    command-line flags can refine it.
    """
    file = Path(path)
    raw = read_structured(file, "config file")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ServerConfigError([f"{file} must hold a mapping of settings"])
    return config_from_mapping(raw, base=file.parent, **overrides)


def config_from_mapping(
    raw: Mapping[str, Any], *, base: Path | None = None, **overrides: Any
) -> ServerConfig:
    """Build a :class:`ServerConfig` from the config-file keys, reporting every problem."""
    problems = [f"unknown setting {key!r}" for key in sorted(set(map(str, raw)) - _KEYS)]
    secrets = raw.get("bearer_secrets", [])
    if isinstance(secrets, str):
        secrets = [secrets]
    if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
        problems.append("bearer_secrets must be a list of strings")
        secrets = []
    secrets = list(secrets)
    secrets_file = raw.get("bearer_secrets_file")
    if secrets_file is not None:
        try:
            text = _resolve(str(secrets_file), base).read_text(encoding="utf-8")
            secrets.extend(line.strip() for line in text.splitlines() if line.strip())
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"cannot read bearer_secrets_file: {exc}")
    fields: dict[str, Any] = {"bearer_secrets": tuple(secrets)}
    renames = {"request_timeout_seconds": "request_timeout", "entities": "entities_file"}
    for key in _KEYS - {"bearer_secrets", "bearer_secrets_file", "identity"}:
        if key in raw and raw[key] is not None:
            fields[renames.get(key, key)] = raw[key]
    for key in ("entities_file", "decision_log"):
        if key in fields:
            if not isinstance(fields[key], str):
                problems.append(f"{key} must be a file path")
                del fields[key]
            else:
                fields[key] = str(_resolve(fields[key], base))
    if raw.get("identity") is not None:
        fields["identity"] = _identity(raw["identity"], base, problems)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    try:
        config = ServerConfig(**fields)
    except ServerConfigError as exc:
        raise ServerConfigError(problems + list(exc.problems)) from None
    if problems:
        raise ServerConfigError(problems)
    return config


def _identity(raw: Any, base: Path | None, problems: list[str]) -> IdentityConfig | None:
    """The ``identity`` section, or None with its problems appended to ``problems``."""
    fields = _section(raw, "identity", _IDENTITY_KEYS, base, problems)
    if fields is None:
        return None
    device_raw = fields.pop("device", None)
    device: DeviceConfig | None = None
    device_ok = True
    if device_raw is not None:
        device_fields = _section(device_raw, "identity.device", _DEVICE_KEYS, base, problems)
        device_ok = device_fields is not None
        if device_fields is not None:
            device = _build(DeviceConfig, device_fields, problems)
            device_ok = device is not None
    config = _build(IdentityConfig, {**fields, "device": device}, problems)
    return config if device_ok else None


def _section(
    raw: Any, where: str, keys: frozenset[str], base: Path | None, problems: list[str]
) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be a mapping of settings")
        return None
    problems.extend(f"unknown setting {where}.{key}" for key in sorted(set(map(str, raw)) - keys))
    fields: dict[str, Any] = {
        _IDENTITY_RENAMES.get(str(key), str(key)): value
        for key, value in raw.items()
        if key in keys and value is not None
    }
    path = fields.get("jwks_file")
    if isinstance(path, str):
        fields["jwks_file"] = str(_resolve(path, base))
    return fields


def _build(kind: Any, fields: dict[str, Any], problems: list[str]) -> Any:
    # A missing required setting is passed as None, so its check reports it with the rest.
    required = {a.name: None for a in attrs.fields(kind) if a.default is attrs.NOTHING}
    try:
        return kind(**{**required, **fields})
    except ServerConfigError as exc:
        problems.extend(exc.problems)
    return None


def _resolve(value: str, base: Path | None) -> Path:
    path = Path(value)
    return path if path.is_absolute() or base is None else base / path


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
