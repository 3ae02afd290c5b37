"""Obligations carried out on JSON-shaped data: ``mask``, ``tokenize`` and ``limit``.

A decision can allow access and still say what must not leave the service: an agent
may see a customer but not the card number. :func:`apply_obligations` does that to
any JSON value (``dict``/``list``/``str``/numbers/``bool``/``None``), without
mutating it. Obligations are checked before anything is applied, by the grammar of
:mod:`zerotrust.obligations` that policies are loaded with: an unknown type or a
malformed one raises :class:`ObligationError`, and callers refuse the request (fail
closed, as AuthZEN advises for obligations a PEP does not understand).

Policy syntax::

    obligations:
      - {type: mask, fields: [card_number], keep_last: 4}   # "************1111"
      - {type: mask, fields: [ssn]}                         # "****"
      - {type: tokenize, fields: [email, phone]}            # "tok_k1_3f9a..."
      - {type: limit, max: 100}                             # at most 100 records
      - {type: limit, max: 100, field: items}               # ... of payload["items"]

``fields`` name object keys matched at any depth, inside lists of records too, so a
field cannot escape its mask by being nested; a key that is not there has nothing to
hide. A masked or tokenized object or array is replaced as a whole. ``limit`` applies
to exactly two shapes: without ``field`` the data is a list of records; with it, an
object whose ``field`` key holds that list. Any other data (an object without ``field``,
the key missing, ``null`` or not a list, the list nested deeper) raises
:class:`ObligationError`: released uncut, it would be data the policy did not allow.
A value that is not JSON-shaped (a generator, a dataclass, a model object) cannot be
looked into, so applying obligations to it raises :class:`ObligationError` rather than
return it unmasked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from zerotrust._describe import describe
from zerotrust.decision import Decision, Obligation
from zerotrust.obligations import (
    BUILTIN_OBLIGATIONS,
    Builtin,
    Limit,
    Mask,
    Tokenize,
    read_obligation,
)
from zerotrust.web.errors import ObligationError, WebConfigError

__all__ = [
    "SUPPORTED_OBLIGATIONS",
    "ObligationPlan",
    "Tokenizer",
    "apply_obligations",
]

SUPPORTED_OBLIGATIONS = BUILTIN_OBLIGATIONS
"""The obligation types this module carries out on data."""

_KID = re.compile(r"[A-Za-z0-9]{1,16}")
_MIN_KEY_BYTES = 32
_TOKEN_HEX = 32  # 128 bits of the HMAC: collision-free for joins, short enough to read


def _key_map(value: Mapping[str, bytes]) -> Mapping[str, bytes]:
    return dict(value)


@attrs.frozen
class Tokenizer:
    """Keyed, stable tokens: ``tok_<kid>_<hex>`` = HMAC-SHA256(key, value), truncated.

    The same value under the same key always gives the same token, so tokenized data
    can still be joined and counted, but without the key a token cannot be reversed or
    confirmed by guessing. Strings are hashed as ``b"s:" + utf8``; other JSON values as
    ``b"j:" + canonical JSON`` (so ``"1"`` and ``1`` differ).

    Rotation: add a new key id, make it ``current``, keep the old key as long as
    :meth:`matches` must recognise old tokens. The ``kid`` inside each token says which
    key made it; tokens of different kids never join, so re-tokenize stored data from
    its source when rotating, then drop the old key.
    """

    keys: Mapping[str, bytes] = attrs.field(converter=_key_map, repr=False)
    current: str

    def __attrs_post_init__(self) -> None:
        for kid, key in self.keys.items():
            if not isinstance(kid, str) or not _KID.fullmatch(kid):
                raise WebConfigError("tokenizer key ids must be 1-16 letters or digits")
            if not isinstance(key, bytes) or len(key) < _MIN_KEY_BYTES:
                raise WebConfigError(f"tokenizer key {kid!r} must be at least 32 bytes")
        if self.current not in self.keys:
            raise WebConfigError("the current tokenizer key id is not among the keys")

    @classmethod
    def from_env(
        cls, variable: str = "ZEROTRUST_TOKENIZE_KEYS", *, environ: Mapping[str, str] | None = None
    ) -> Tokenizer:
        """Keys from ``kid:base64url,kid:base64url``; the first is current.

        Raises :class:`WebConfigError` if the variable is missing or malformed.
        """
        raw = (os.environ if environ is None else environ).get(variable, "")
        keys: dict[str, bytes] = {}
        for item in filter(None, (p.strip() for p in raw.split(","))):
            kid, sep, encoded = item.partition(":")
            if not sep:
                raise WebConfigError(f"{variable}: each key is kid:base64url")
            try:
                keys[kid] = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError) as exc:
                raise WebConfigError(f"{variable}: key {kid!r} is not base64url") from exc
        if not keys:
            raise WebConfigError(f"{variable} holds no tokenizer key")
        return cls(keys=keys, current=next(iter(keys)))

    def token(self, value: Any) -> str:
        """The token of one JSON value under the current key."""
        return self._token(self.current, value)

    def matches(self, token: str, value: Any) -> bool:
        """Whether ``token`` is the token of ``value`` under the key its kid names."""
        prefix, _, rest = token.partition("_")
        kid, _, _ = rest.partition("_")
        if prefix != "tok" or kid not in self.keys:
            return False
        return hmac.compare_digest(token, self._token(kid, value))

    def _token(self, kid: str, value: Any) -> str:
        if isinstance(value, str):
            data = b"s:" + value.encode("utf-8", "surrogatepass")
        else:
            data = b"j:" + _canonical(value).encode("utf-8", "surrogatepass")
        digest = hmac.new(self.keys[kid], data, hashlib.sha256).hexdigest()
        return f"tok_{kid}_{digest[:_TOKEN_HEX]}"


def _canonical(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


Step = Callable[[Any], Any]


@attrs.frozen
class ObligationPlan:
    """Obligations checked once, then applied to any number of payloads.

    Build it with :meth:`compile` before the protected code runs, so an obligation
    that cannot be honoured refuses the request instead of failing after the fact.
    """

    steps: tuple[Step, ...] = ()
    types: tuple[str, ...] = ()
    #: How many of ``steps``, from the first, are ``limit`` cuts.
    limits: int = 0

    @classmethod
    def compile(
        cls,
        obligations: Iterable[Obligation],
        *,
        tokenizer: Tokenizer | None = None,
        handled: Iterable[str] = (),
    ) -> ObligationPlan:
        """Check every obligation; raise :class:`ObligationError` for any it cannot do.

        Types in ``handled`` are the caller's to carry out (for example a ``limit``
        pushed into a SQL query) and are skipped here.
        """
        skip = frozenset(handled)
        limits: list[Step] = []
        others: list[Step] = []
        types: list[str] = []
        for ob in obligations:
            if ob.type in skip:
                continue
            if ob.type not in SUPPORTED_OBLIGATIONS:
                raise ObligationError(f"unsupported obligation type {ob.type!r}{_from(ob)}")
            spec = _reading(ob)
            if isinstance(spec, Mask):
                others.append(_mask_step(spec))
            elif isinstance(spec, Tokenize):
                others.append(_tokenize_step(spec, tokenizer, ob))
            else:
                limits.append(_limit_step(spec, ob))
            types.append(ob.type)
        return cls(steps=(*limits, *others), types=tuple(types), limits=len(limits))

    def __bool__(self) -> bool:
        return bool(self.steps)

    def without_limits(self) -> ObligationPlan:
        """The masks and tokenizations alone: for data that holds no list of records to cut."""
        return ObligationPlan(steps=self.steps[self.limits :], types=self.types)

    def apply(self, payload: Any) -> Any:
        """A new value with every obligation applied; the input is left unchanged.

        Raises :class:`ObligationError` if ``payload`` holds anything that is not
        JSON-shaped (see the module docstring).
        """
        for step in self.steps:
            payload = step(payload)
        return payload


def apply_obligations(
    payload: Any,
    decision: Decision | Iterable[Obligation],
    *,
    tokenizer: Tokenizer | None = None,
    handled: Iterable[str] = (),
) -> Any:
    """Apply a decision's obligations to JSON-shaped ``payload`` and return the result.

    Raises :class:`ObligationError`, before touching the data, if any obligation is
    unknown or malformed, or ``tokenize`` is asked for without a ``tokenizer``.
    """
    obligations = decision.obligations if isinstance(decision, Decision) else decision
    return ObligationPlan.compile(obligations, tokenizer=tokenizer, handled=handled).apply(payload)


def _from(ob: Obligation) -> str:
    return f" (from rule {ob.rule})" if ob.rule else ""


def _reading(ob: Obligation) -> Builtin:
    """The obligation's parameters by the grammar policies are loaded with."""
    reading = read_obligation(ob.type, ob.params)
    if reading.spec is None:
        problems = "; ".join(p.message for p in reading.problems)
        raise ObligationError(f"{ob.type}: {problems or 'not a built-in type'}{_from(ob)}")
    return reading.spec


def _mask_step(spec: Mask) -> Step:
    keep, replacement = spec.keep_last, spec.replacement

    def mask(value: Any) -> Any:
        if value is None:
            return None  # absence is not a secret
        text = _scalar_text(value)
        if keep and text is not None and len(text) > keep:
            return "*" * (len(text) - keep) + text[-keep:]
        return replacement

    return lambda payload: _rewrite(payload, spec.fields, mask)


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


def _tokenize_step(spec: Tokenize, tokenizer: Tokenizer | None, ob: Obligation) -> Step:
    if tokenizer is None:
        raise ObligationError(f"tokenize: no tokenizer is configured{_from(ob)}")

    def tokenize(value: Any) -> Any:
        return None if value is None else tokenizer.token(value)

    return lambda payload: _rewrite(payload, spec.fields, tokenize)


def _limit_step(spec: Limit, ob: Obligation) -> Step:
    """Cut the list of records; refuse data where that list is not (see the module doc)."""
    most, field = spec.max, spec.field

    def limit(payload: Any) -> Any:
        if field is None:
            if isinstance(payload, list | tuple):
                return list(payload[:most])
            found, wanted = f"the data is {_kind(payload)}", "a list of records"
        else:
            wanted = f"an object with a list of records under {field!r}"
            if not isinstance(payload, Mapping):
                found = f"the data is {_kind(payload)}"
            elif field not in payload:
                found = f"the object has no {field!r}"
            elif isinstance(records := payload[field], list | tuple):
                return {**payload, field: list(records[:most])}
            else:
                found = f"its {field!r} is {_kind(records)}"
        raise ObligationError(f"limit cannot apply: {found} (it needs {wanted}){_from(ob)}")

    return limit


def _rewrite(value: Any, fields: frozenset[str], change: Callable[[Any], Any]) -> Any:
    """A copy of ``value`` with ``change`` applied to every value under a key in ``fields``."""
    if isinstance(value, Mapping):
        return {
            k: change(v) if k in fields else _rewrite(v, fields, change) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_rewrite(v, fields, change) for v in value]
    return _json_shaped(value)


def _kind(value: Any) -> str:
    return describe(value, mapping="an object", sequence="a list")


def _json_shaped(value: Any) -> Any:
    """``value`` if it is a JSON object, array or scalar; else :class:`ObligationError`."""
    if value is None or isinstance(value, str | int | float | Mapping | list | tuple):
        return value
    raise ObligationError(
        f"obligations cannot be applied to a {type(value).__name__}: "
        "return JSON-shaped data (dict, list, str, numbers, bool, None)"
    )
