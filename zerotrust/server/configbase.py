"""What every configuration section shares: checking on construction, and pydantic's
errors turned into one line each that names the key and never quotes a secret.

pydantic's own messages are not shown: they name Python types (``Input should be a
valid integer``) and quote the input, which may be a secret.
"""

from __future__ import annotations

import difflib
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from zerotrust.errors import ZeroTrustError

__all__ = [
    "CONFIG",
    "Loc",
    "Section",
    "ServerConfigError",
    "describe",
    "dotted",
    "line",
    "masked_url",
    "problem",
    "shown",
]

_SHOWN = 60

Loc = tuple[str | int, ...]


class ServerConfigError(ZeroTrustError, ValueError):
    """The server configuration is unusable; ``problems`` lists every reason, one line
    each, naming the key (``located`` holds them as (key path, message) pairs).

    Raised when a :class:`ServerConfig` (or a section) is built, and by the readers in
    :mod:`zerotrust.server.settings`.
    """

    def __init__(self, problems: Sequence[str | tuple[Loc, str]]) -> None:
        self.located: tuple[tuple[Loc, str], ...] = tuple(
            p if isinstance(p, tuple) else ((), p) for p in problems
        )
        self.problems: tuple[str, ...] = tuple(line(loc, m) for loc, m in self.located)
        super().__init__("invalid server configuration: " + "; ".join(self.problems))


def dotted(loc: Loc) -> str:
    """``("identity", "audience", 1)`` as ``identity.audience[1]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def line(loc: Loc, message: str) -> str:
    return f"{dotted(loc)}: {message}" if loc else message


def shown(value: Any) -> str:
    """A value for a message, as written in YAML; never called for a secret."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) in (int, float):
        return repr(value)
    if type(value) is str:
        text = repr(value)
        return text if len(text) <= _SHOWN else text[: _SHOWN - 4] + "...'"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list" if value else "an empty list"
    return f"a {type(value).__name__}"


def masked_url(url: str) -> str:
    """``url`` with the password in it (if any) as ``***``: in the user part, and as a
    ``password=`` query argument (redis-py reads one there too)."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return "***"
    if parts.query:
        query = "&".join(
            f"{name}=***" if name.strip().lower() == "password" else pair
            for pair in parts.query.split("&")
            for name in [urllib.parse.unquote_plus(pair.partition("=")[0])]
        )
        parts = parts._replace(query=query)
    if password:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    return urllib.parse.urlunsplit(parts)


def problem(message: str) -> PydanticCustomError:
    # A template without ctx is used as it is; braces in it are escaped all the same.
    return PydanticCustomError("zerotrust", message.replace("{", "{{").replace("}", "}}"))


CONFIG = ConfigDict(
    frozen=True,
    extra="forbid",
    strict=True,  # a bool is not a number, "5" is not 5
    allow_inf_nan=False,
    validate_by_name=True,
    validate_by_alias=True,
    hide_input_in_errors=True,
    regex_engine="python-re",
)


class Section(BaseModel):
    """Keyword construction checks everything and raises :class:`ServerConfigError`."""

    model_config = CONFIG
    #: Keys whose values are never shown in a message.
    secret_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **data: Any) -> None:
        data, located = self._prepare(data)
        located += self._cross(data)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            located += _translate(type(self), exc)
        else:
            located += self._after()
        if located:
            raise ServerConfigError(located)

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[Loc, str]]]:
        return data, []

    @classmethod
    def _cross(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        """Checks across keys, on the given values: reported with the others."""
        return []

    def _after(self) -> list[tuple[Loc, str]]:
        """Checks that need every value valid first."""
        return []

    def given(self) -> dict[str, Any]:
        """The values set when built (not defaulted), by attribute name."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def _translate(kind: type[Section], exc: ValidationError) -> Iterator[tuple[Loc, str]]:
    """pydantic's errors as (key path, message), one each, secrets never quoted."""
    schema = kind.model_json_schema(by_alias=True)
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, ServerConfigError):  # a nested section, checked by itself
            yield from ((loc + inner, message) for inner, message in cause.located)
            continue
        if error["type"] == "zerotrust":
            yield loc, error["msg"]
            continue
        key = str(loc[0]) if loc else ""
        if error["type"] == "extra_forbidden":
            yield loc, _unknown(key, schema)
            continue
        if error["type"] == "missing":
            yield loc, "is required"
            continue
        field = kind.model_fields.get(key)
        alias = field.alias if field is not None and field.alias else key
        what = _describe(_at(schema, schema["properties"].get(alias, {}), loc[1:]), schema)
        secret = alias in kind.secret_keys or key in kind.secret_keys
        yield loc, f"must be {what}" + ("" if secret else f", not {shown(error['input'])}")


def _unknown(key: str, schema: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(schema.get("properties", {})), n=1, cutoff=0.6)
    return "unknown setting" + (f" (did you mean {close[0]!r}?)" if close else "")


def _at(root: Mapping[str, Any], schema: Mapping[str, Any], rest: Loc) -> Mapping[str, Any]:
    """The schema of a list item (a ``[n]`` in the key path)."""
    schema = _deref(root, schema)
    for part in rest:
        if not isinstance(part, int):
            break
        arrays = [s for s in _options(root, schema) if s.get("type") == "array"]
        schema = _deref(root, arrays[0].get("items", {})) if arrays else schema
    return schema


def _deref(root: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        found: Mapping[str, Any] = root.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {})
        return found
    return schema


def _options(root: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return [_deref(root, s) for s in options if s.get("type") != "null"]


def describe(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> str:
    """What a value must be, in words, from its JSON Schema."""
    return _describe(schema, root or {})


def _describe(schema: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    parts = [_one(s, root) for s in _options(root, _deref(root, schema))]
    return " or ".join(dict.fromkeys(p for p in parts if p)) or "a valid value"


def _one(schema: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        return "a non-empty string" if schema.get("minLength") else "a string"
    if kind == "object":
        return "a mapping of settings"
    if kind == "array":
        items = _describe(schema.get("items", {}), root)
        return f"a list of {items.removeprefix('a ').removeprefix('an ')}s" if items else "a list"
    if kind not in ("integer", "number"):
        return ""
    noun = "whole number" if kind == "integer" else "number"
    low, high = schema.get("minimum"), schema.get("maximum")
    above = schema.get("exclusiveMinimum")
    if kind == "integer" and low == 1 and high is None:
        return "a positive whole number"
    if low is not None and high is not None:
        return f"a {noun} from {low} to {high}"
    if above is not None:
        return f"a {noun} above {above}" + (f" and at most {high}" if high is not None else "")
    if low is not None:
        return f"a {noun} >= {low}"
    return f"a {noun}"
