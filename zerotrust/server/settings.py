"""Where the server configuration comes from: a file, the environment, the flags.

Each later source wins, key by key: flag > environment variable > file > default. A
variable is ``ZEROTRUST_`` and the key's path in capitals, sections joined by ``__``
(``ZEROTRUST_IDENTITY__LEEWAY_SECONDS``); ``ZEROTRUST_CONFIG`` names the file. A
value for a text key is taken as it is; any other is read as one YAML value (``true``,
``5``, ``[a, b]``) by the policy loader's reader; ``ZEROTRUST_BEARER_SECRETS`` is a
comma-separated list, never read as YAML. Every problem names where its value came
from: the key for the file, the variable, or the flag.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from zerotrust.policy.located import YamlProblem, load_documents
from zerotrust.server.config import ServerConfig, read_structured
from zerotrust.server.configbase import Loc, ServerConfigError, dotted, line, masked_url

__all__ = [
    "CONFIG_VARIABLE",
    "ENV_PREFIX",
    "FLAG_SECRETS",
    "config_from_mapping",
    "config_schema",
    "effective",
    "env_name",
    "flag_name",
    "keys",
    "load_config",
    "printed",
    "resolve",
]

ENV_PREFIX = "ZEROTRUST_"
#: The config file, when ``--config`` is not given.
CONFIG_VARIABLE = "ZEROTRUST_CONFIG"
#: Never flags: a command line is visible to every user of the machine (``ps``).
FLAG_SECRETS = frozenset({"bearer_secrets", "paging_secret"})
#: Keys naming files: relative to the config file when written in it.
_PATHS = frozenset(
    {
        ("bearer_secrets_file",),
        ("paging_secret_file",),
        ("entities",),
        ("decision_log",),
        ("policies",),
        ("identity", "jwks_file"),
        ("identity", "device", "jwks_file"),
    }
)
#: Where each value came from: its key path to the variable or flag (absent: the file).
Origins = dict[Loc, str]


def config_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of the config file."""
    schema = ServerConfig.model_json_schema(by_alias=True)
    schema["properties"]["behavior_redis_url"] = {
        "type": "string",
        "deprecated": True,
        "description": "the old spelling of behavior.store",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "zerotrust serve configuration",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def keys() -> Iterator[tuple[Loc, Mapping[str, Any]]]:
    """Every key a value is given for (sections walked into), with its schema."""
    schema = config_schema()

    def walk(props: Mapping[str, Any], where: Loc) -> Iterator[tuple[Loc, Mapping[str, Any]]]:
        for name, sub in props.items():
            section = _section(schema, sub)
            if section is not None:
                yield from walk(section["properties"], (*where, name))
            elif not sub.get("deprecated"):
                yield (*where, name), sub

    yield from walk(schema["properties"], ())


def _section(root: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object schema a key holds (a section), or None for a value."""
    for option in schema.get("anyOf", [schema]):
        ref = option.get("$ref")
        if isinstance(ref, str):
            found: Mapping[str, Any] = root["$defs"][ref.rsplit("/", 1)[-1]]
            return found
    return None


def env_name(path: Loc) -> str:
    return ENV_PREFIX + "__".join(str(p).upper() for p in path)


def flag_name(path: Loc) -> str:
    return "--" + "-".join(str(p) for p in path).replace("_", "-")


def load_config(path: str | Path, **overrides: Any) -> ServerConfig:
    """Read a YAML or JSON config file; relative paths in it are relative to the file.

    ``overrides`` (keyword names of :class:`ServerConfig`) win over the file. The
    environment is not read: that is :func:`resolve`, for ``zerotrust serve``.
    """
    return resolve(path, environ={}, **overrides)


def config_from_mapping(
    raw: Mapping[str, Any], *, base: Path | None = None, **overrides: Any
) -> ServerConfig:
    """Build a :class:`ServerConfig` from the config-file keys, reporting every problem."""
    data = _resolved_paths(_keyed(raw), base) if base is not None else _keyed(raw)
    return _build([(data, {})], overrides)


def resolve(
    config_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> ServerConfig:
    """The configuration of ``zerotrust serve``: the file (or ``$ZEROTRUST_CONFIG``),
    then ``ZEROTRUST_...`` variables of ``environ`` (default: this process's), then
    ``flags`` (key paths as ``identity.issuer``, values as typed), then ``overrides``
    (keyword names of :class:`ServerConfig`, values as they are; None is not given).
    """
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get(CONFIG_VARIABLE):
        config_file = environ[CONFIG_VARIABLE]
    layers: list[tuple[dict[str, Any], Origins]] = []
    if config_file is not None:
        file = Path(config_file)
        raw = read_structured(file, "config file")
        if raw is not None and not isinstance(raw, Mapping):
            raise ServerConfigError([f"{file} must hold a mapping of settings"])
        layers.append((_resolved_paths(_keyed(raw or {}), file.parent), {}))
    problems: list[str] = []
    known = dict(keys())
    layers.append(_given(_from_environ(environ), env_name, known, problems))
    layers.append(_given(dict(flags or {}), flag_name, known, problems))
    if problems:
        raise ServerConfigError(problems)
    return _build(layers, overrides)


def _from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        ".".join(name[len(ENV_PREFIX) :].lower().split("__")): value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX) and name != CONFIG_VARIABLE and value != ""
    }


def _given(
    values: Mapping[str, Any],
    label: Any,
    known: Mapping[Loc, Mapping[str, Any]],
    problems: list[str],
) -> tuple[dict[str, Any], Origins]:
    """Values keyed by dotted path as one nested mapping; text read by the key's type."""
    data: dict[str, Any] = {}
    origins: Origins = {}
    for name, value in sorted(values.items()):
        path: Loc = tuple(name.split("."))
        origins[path] = label(path)
        schema = known.get(path) if isinstance(value, str) else None
        if path == ("bearer_secrets",) and isinstance(value, str):
            # Never read as YAML (its messages may quote the text): comma-separated, as a
            # comma is in no RFC 6750 token.
            value = [part for part in value.split(",") if part]  # noqa: PLW2901
        elif isinstance(value, str) and schema is not None and not _text(schema, value):
            try:
                documents = load_documents(value)
            except YamlProblem as exc:
                problems.append(f"{label(path)}: not a YAML value ({exc.message})")
                continue
            if len(documents) == 1:
                value = documents[0].plain()  # noqa: PLW2901 (the value, as typed)
        node = data
        for part in path[:-1]:
            node = node.setdefault(str(part), {})
            if not isinstance(node, dict):
                problems.append(f"{label(path)}: {dotted(path[:-1])} is not a section")
                break
        else:
            node[str(path[-1])] = value
    return data, origins


def _text(schema: Mapping[str, Any], value: str) -> bool:
    """Whether ``value`` is taken as written: for a key that takes text only, and for
    one of a key's choices (``--schema-validation off`` is the choice, not YAML false)."""
    options = schema.get("anyOf", [schema])
    if any(value in o.get("enum", ()) for o in options):
        return True
    kinds = {o.get("type") for o in options} - {"null"}
    return kinds == {"string"} and not any("enum" in o for o in options)


def _build(
    layers: list[tuple[dict[str, Any], Origins]], overrides: Mapping[str, Any]
) -> ServerConfig:
    data: dict[str, Any] = {}
    origins: Origins = {}
    for layer, where in layers:
        _merge(data, layer)
        origins.update(where)
    fields = ServerConfig.model_fields
    for name, value in overrides.items():
        if value is not None:
            field = fields.get(name)
            data[field.alias if field is not None and field.alias else name] = value
    try:
        return ServerConfig(**data)
    except ServerConfigError as exc:
        raise ServerConfigError([_labelled(loc, m, origins) for loc, m in exc.located]) from None


def _merge(into: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _labelled(loc: Loc, message: str, origins: Origins) -> str:
    for end in range(len(loc), 0, -1):
        label = origins.get(loc[:end])
        if label is not None:
            return f"{label} ({dotted(loc)}): {message}"
    return line(loc, message)


def _keyed(raw: Mapping[Any, Any]) -> dict[str, Any]:
    """Keys as text (a YAML key may be a number), sections too."""
    return {str(k): _keyed(v) if isinstance(v, Mapping) else v for k, v in raw.items()}


def _resolved_paths(data: dict[str, Any], base: Path, where: Loc = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = (*where, key)
        if isinstance(value, dict):
            out[key] = _resolved_paths(value, base, path)
        elif path in _PATHS and isinstance(value, str) and value:
            out[key] = value if Path(value).is_absolute() else str(base / value)
        else:
            out[key] = value
    return out


def effective(config: ServerConfig) -> dict[str, Any]:
    """The configuration as the file would write it, every secret as ``***``."""
    data = config.model_dump(mode="json", by_alias=True)
    data["bearer_secrets"] = ["***" for _ in config.bearer_secrets]
    if config.paging_secret is not None:
        data["paging_secret"] = "***"
    data["behavior"]["store"] = masked_url(config.behavior.store)
    for section in (data.get("identity"), (data.get("identity") or {}).get("device")):
        if section and section.get("jwks_url"):
            section["jwks_url"] = masked_url(section["jwks_url"])
    if data.get("search_database"):
        data["search_database"]["url"] = masked_url(data["search_database"]["url"])
    if data.get("base_url"):
        data["base_url"] = masked_url(data["base_url"])
    return data


def printed(config: ServerConfig) -> str:
    """:func:`effective` as YAML, for ``zerotrust serve --print-config``."""
    text: str = yaml.safe_dump(effective(config), sort_keys=False, allow_unicode=True)
    return text
