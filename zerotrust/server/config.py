"""Server configuration: one frozen object, checked whole before the server starts.

A server that cannot authenticate its callers must not start by accident, so the
checks refuse a configuration without a bearer secret unless ``insecure_local``
says, explicitly, that only loopback callers are served.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from zerotrust.errors import ZeroTrustError

__all__ = [
    "MIN_SECRET_LENGTH",
    "ServerConfig",
    "ServerConfigError",
    "config_from_mapping",
    "load_config",
]

MIN_SECRET_LENGTH = 16
_KEYS = frozenset(
    {
        "bearer_secrets",
        "bearer_secrets_file",
        "insecure_local",
        "include_reasons",
        "max_body_bytes",
        "request_timeout_seconds",
        "max_evaluations",
        "search_max_results",
        "entities",
        "base_url",
        "decision_log",
    }
)


class ServerConfigError(ZeroTrustError, ValueError):
    """The server configuration is unusable; ``problems`` lists every reason.

    Raised by :func:`load_config` and when a :class:`ServerConfig` is built.
    """

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("invalid server configuration: " + "; ".join(self.problems))


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
    ``decision_log``: a JSON-lines file that ``zerotrust serve`` logs decisions to.
    """

    bearer_secrets: tuple[str, ...] = attrs.field(default=(), converter=tuple, repr=False)
    insecure_local: bool = False
    include_reasons: bool = True
    max_body_bytes: int = 1024 * 1024
    request_timeout: float = 5.0
    max_evaluations: int = 1000
    search_max_results: int = 1000
    entities_file: str | None = None
    base_url: str | None = None
    decision_log: str | None = None

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
        elif secret != secret.strip() or any(c.isspace() for c in secret):
            problems.append(f"bearer secret #{index + 1} must not contain whitespace")
    if not config.bearer_secrets and not config.insecure_local:
        problems.append(
            "no bearer secret configured: set bearer_secrets (or bearer_secrets_file), "
            "or run with --insecure-local for loopback-only development"
        )
    for name in ("max_body_bytes", "max_evaluations", "search_max_results"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{name} must be a positive whole number, not {value!r}")
    timeout = config.request_timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        problems.append(f"request_timeout_seconds must be a positive number, not {timeout!r}")
    for name in ("insecure_local", "include_reasons"):
        if not isinstance(getattr(config, name), bool):
            problems.append(f"{name} must be true or false")
    if config.base_url is not None and (
        not isinstance(config.base_url, str)
        or not config.base_url.startswith(("https://", "http://"))
        or any(c in config.base_url for c in "?#")
    ):
        problems.append("base_url must be an http(s) URL without query or fragment")
    return problems


def load_config(path: str | Path, **overrides: Any) -> ServerConfig:
    """Read a YAML or JSON config file; relative paths in it are relative to the file.

    ``overrides`` (keyword names of :class:`ServerConfig`) win over the file, so
    command-line flags can refine it.
    """
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ServerConfigError([f"cannot read {file}: {exc}"]) from exc
    except yaml.YAMLError as exc:
        raise ServerConfigError([f"{file} is not valid YAML or JSON: {exc}"]) from exc
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
    for key in _KEYS - {"bearer_secrets", "bearer_secrets_file"}:
        if key in raw and raw[key] is not None:
            fields[renames.get(key, key)] = raw[key]
    for key in ("entities_file", "decision_log"):
        if key in fields:
            if not isinstance(fields[key], str):
                problems.append(f"{key} must be a file path")
                del fields[key]
            else:
                fields[key] = str(_resolve(fields[key], base))
    fields.update({k: v for k, v in overrides.items() if v is not None})
    try:
        config = ServerConfig(**fields)
    except ServerConfigError as exc:
        raise ServerConfigError(problems + list(exc.problems)) from None
    if problems:
        raise ServerConfigError(problems)
    return config


def _resolve(value: str, base: Path | None) -> Path:
    path = Path(value)
    return path if path.is_absolute() or base is None else base / path
