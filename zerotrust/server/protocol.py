"""AuthZEN 1.0 messages: strict parsing of requests, shaping of responses.

The library is lenient where an embedding caller benefits (``subject.type`` defaults
to ``user``, ``resource.id`` may be absent); the wire protocol is not, because the
certification scenario requires 400 for every missing or wrongly typed field. Unknown
keys are ignored, as the spec's forward-compatibility rule demands, by copying only
the known ones into the library's request shape. Nothing here does I/O.

With identity verification (``identity=True``) the subject is whoever the forwarded
token names: ``subject.type`` and ``subject.id`` become optional, and
:func:`with_credentials` turns the request into the library's ``{"token": ...}`` form.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from typing import Any

import attrs

from zerotrust.decision import Decision, Effect
from zerotrust.errors import RequestError

__all__ = [
    "MISSING_TOKEN",
    "SUBJECT_MISMATCH",
    "BatchRequest",
    "Page",
    "Refusal",
    "SearchKind",
    "SearchRequest",
    "Semantic",
    "decision_body",
    "error_item",
    "parse_batch",
    "parse_evaluation",
    "parse_json",
    "parse_search",
    "refusal_body",
    "with_credentials",
]

#: Refusal codes the server gives itself; the rest are the library's ``IdentityError.code``.
MISSING_TOKEN = "missing_token"
SUBJECT_MISMATCH = "subject_mismatch"


class Semantic(enum.StrEnum):
    """``options.evaluations_semantic``: how a batch is run."""

    EXECUTE_ALL = "execute_all"
    DENY_ON_FIRST_DENY = "deny_on_first_deny"
    PERMIT_ON_FIRST_PERMIT = "permit_on_first_permit"


class SearchKind(enum.StrEnum):
    """Which entity a search enumerates."""

    SUBJECT = "subject"
    RESOURCE = "resource"
    ACTION = "action"


@attrs.frozen
class BatchRequest:
    """A parsed ``evaluations`` call: each item a library request, or why it is invalid."""

    items: tuple[dict[str, Any] | RequestError, ...]
    semantic: Semantic


@attrs.frozen
class Page:
    """A search page request: ``limit`` None means "as many as the server allows"."""

    token: str | None = None
    limit: int | None = None


@attrs.frozen
class SearchRequest:
    """A parsed search. The searched entity carries only ``type`` and ``properties``."""

    kind: SearchKind
    subject: dict[str, Any]
    action: dict[str, Any] | None
    resource: dict[str, Any]
    context: dict[str, Any]
    page: Page | None
    fingerprint: str


@attrs.frozen
class Refusal:
    """A request refused before any policy saw it: its credentials did not verify.

    ``code`` is an ``IdentityError.code`` (or :data:`MISSING_TOKEN` /
    :data:`SUBJECT_MISMATCH`); never the token or why it failed in more detail.
    """

    code: str


def parse_json(body: bytes) -> dict[str, Any]:
    """Decode a request body as I-JSON: UTF-8, one object, no duplicate keys, no NaN."""
    if not body.strip():
        raise RequestError("body", "the request body is empty")
    try:
        text = body.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise RequestError("body", "the request body is not UTF-8") from exc
    except RecursionError as exc:
        raise RequestError("body", "the JSON is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, duplicate keys, over-long integers
        raise RequestError("body", f"malformed JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise RequestError("body", "the request body must be a JSON object")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def parse_evaluation(body: Mapping[str, Any], *, identity: bool = False) -> dict[str, Any]:
    """One Access Evaluation request to the library's request mapping."""
    return _request(
        body.get("subject"),
        body.get("action"),
        body.get("resource"),
        body.get("context"),
        identity=identity,
    )


def parse_batch(
    body: Mapping[str, Any], *, identity: bool = False
) -> BatchRequest | dict[str, Any]:
    """An Access Evaluations request; a plain request when ``evaluations`` is absent or empty.

    Top-level ``subject``/``action``/``resource``/``context`` are defaults that an
    item replaces whole (no merging inside an entity). A default that is present must
    be valid: an error there concerns the whole payload (400). A problem inside one
    item only fails that item.
    """
    evaluations = body.get("evaluations")
    semantic = _semantic(body.get("options"))  # checked even for one evaluation
    if evaluations is None or evaluations == []:
        return parse_evaluation(body, identity=identity)
    if not isinstance(evaluations, list):
        raise RequestError("evaluations", f"must be an array, not {_kind(evaluations)}")
    defaults: dict[str, Any] = {}
    for key in ("subject", "action", "resource", "context"):
        value = body.get(key)
        if value is not None:
            _entity_or_context(key, value, identity)  # raises for the whole payload
            defaults[key] = value
    items: list[dict[str, Any] | RequestError] = []
    for index, item in enumerate(evaluations):
        try:
            if not isinstance(item, dict):
                raise RequestError(f"evaluations[{index}]", f"must be an object, not {_kind(item)}")
            merged = dict(defaults)
            merged.update(
                {
                    k: item[k]
                    for k in ("subject", "action", "resource", "context")
                    if item.get(k) is not None
                }
            )
            items.append(parse_evaluation(merged, identity=identity))
        except RequestError as exc:
            items.append(exc)
    return BatchRequest(items=tuple(items), semantic=semantic)


def _semantic(options: Any) -> Semantic:
    if options is None:
        return Semantic.EXECUTE_ALL
    if not isinstance(options, dict):
        raise RequestError("options", f"must be an object, not {_kind(options)}")
    value = options.get("evaluations_semantic")
    if value is None:
        return Semantic.EXECUTE_ALL
    if not isinstance(value, str) or value not in Semantic.__members__.values():
        allowed = ", ".join(s.value for s in Semantic)
        raise RequestError("options.evaluations_semantic", f"must be one of {allowed}")
    return Semantic(value)


def parse_search(
    kind: SearchKind, body: Mapping[str, Any], *, identity: bool = False
) -> SearchRequest:
    """A search request: the searched entity needs only its type (its id is ignored);
    every other entity must be complete. With ``identity`` the subject is the caller,
    named by a token, and the fingerprint leaves the token out (it may be refreshed
    between pages)."""
    if identity and kind is SearchKind.SUBJECT:
        raise RequestError(
            "subject",
            "subject search is not available: this server verifies subject tokens, "
            "and the candidate subjects have none",
        )
    subject = (
        _subject_with_token(body.get("subject"))
        if identity
        else _entity("subject", body.get("subject"), need_id=kind is not SearchKind.SUBJECT)
    )
    resource = _entity("resource", body.get("resource"), need_id=kind is not SearchKind.RESOURCE)
    action = None if kind is SearchKind.ACTION else _action(body.get("action"))
    context = _context(body.get("context"))
    page = _page(body.get("page"))
    if kind is SearchKind.SUBJECT:
        subject.pop("id", None)
    if kind is SearchKind.RESOURCE:
        resource.pop("id", None)
    bound = _without_token(subject) if identity else subject
    canonical: dict[str, Any] = {"k": kind.value, "s": bound, "a": action, "r": resource}
    canonical["c"] = context
    canonical["l"] = page.limit if page is not None else None
    fingerprint = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return SearchRequest(kind, subject, action, resource, context, page, fingerprint)


def _page(value: Any) -> Page | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError("page", f"must be an object, not {_kind(value)}")
    token = value.get("token")
    if token is not None and not isinstance(token, str):
        raise RequestError("page.token", f"must be a string, not {_kind(token)}")
    limit = value.get("limit")
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)  # JSON has one number type: 20.0 is the integer 20
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise RequestError("page.limit", "must be a non-negative integer")
    props = value.get("properties")
    if props is not None and not isinstance(props, dict):
        raise RequestError("page.properties", f"must be an object, not {_kind(props)}")
    return Page(token=token or None, limit=limit or None)


def _request(
    subject: Any, action: Any, resource: Any, context: Any, *, identity: bool = False
) -> dict[str, Any]:
    ctx = _context(context)
    device = ctx.get("device")
    return {
        "subject": _subject_with_token(subject) if identity else _entity("subject", subject),
        "action": _action(action),
        "resource": _entity("resource", resource),
        "context": ctx,
        "device": device or {},
    }


def _entity_or_context(key: str, value: Any, identity: bool = False) -> None:
    if key == "context":
        _context(value)
    elif key == "action":
        _action(value)
    elif key == "subject" and identity:
        _subject_with_token(value)
    else:
        _entity(key, value)


def _subject_with_token(value: Any) -> dict[str, Any]:
    """The subject when a token names it: ``type`` and ``id`` are optional (they are
    only compared with the token's), the whole subject may be absent (the token then
    comes in a header), and ``properties.token``, when sent, is a non-empty string."""
    if value is None:
        return {"properties": {}}
    if not isinstance(value, dict):
        raise RequestError("subject", f"must be an object, not {_kind(value)}")
    out: dict[str, Any] = {}
    for key in ("type", "id"):
        if value.get(key) is not None:
            out[key] = _string(value, "subject", key)
    out["properties"] = _properties(value, "subject")
    if out["properties"].get("token") is not None:
        _string(out["properties"], "subject.properties", "token")
    return out


def _without_token(subject: Mapping[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in subject.get("properties", {}).items() if k != "token"}
    return {**subject, "properties": properties}


def with_credentials(
    request: Mapping[str, Any], header_token: str | None, subject_type: str | None
) -> dict[str, Any] | Refusal:
    """The library request for a PDP that verifies identity, or why it is refused now.

    The token is ``subject.properties.token``, else the one forwarded in a header; the
    device attestation is ``device.attestation`` (from ``context.device``). What the
    PEP says the subject is (``type``, ``id``) must agree with the token: the id is read
    from the token's payload before verification, which is safe because it can only
    refuse, and because the PDP then verifies those same bytes (a payload it accepts
    parses here to the same ``sub``; one that does not parse here it refuses too).
    Every other subject property is dropped: the verified claims replace them. The
    attestation is also removed from ``context.device``, so that no credential
    reaches the decision log.
    """
    subject = request.get("subject") or {}
    token = subject.get("properties", {}).get("token")
    if token is None:
        token = header_token
    if token is None:
        return Refusal(MISSING_TOKEN)
    claimed, named = subject.get("id"), _unverified_subject(token)
    # An unreadable payload is left to the PDP, which refuses it with the precise code.
    if claimed is not None and named is not None and claimed != named:
        return Refusal(SUBJECT_MISMATCH)
    if subject_type is not None and subject.get("type", subject_type) != subject_type:
        return Refusal(SUBJECT_MISMATCH)
    out = {**request, "subject": {"token": token}}
    context = request.get("context")
    if isinstance(context, dict) and isinstance(context.get("device"), dict):
        device = {k: v for k, v in context["device"].items() if k != "attestation"}
        out["context"] = {**context, "device": device}
    return out


def _unverified_subject(token: str) -> Any:
    """The ``sub`` claim of a compact JWS, unverified; None when it cannot be read."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, binascii.Error, RecursionError):
        return None
    return claims.get("sub") if isinstance(claims, dict) else None


def _entity(name: str, value: Any, *, need_id: bool = True) -> dict[str, Any]:
    if value is None:
        raise RequestError(name, "is required")
    if not isinstance(value, dict):
        raise RequestError(name, f"must be an object, not {_kind(value)}")
    out: dict[str, Any] = {"type": _string(value, name, "type")}
    if need_id:
        out["id"] = _string(value, name, "id")
    out["properties"] = _properties(value, name)
    return out


def _action(value: Any) -> dict[str, Any]:
    if value is None:
        raise RequestError("action", "is required")
    if not isinstance(value, dict):
        raise RequestError("action", f"must be an object, not {_kind(value)}")
    return {"name": _string(value, "action", "name"), "properties": _properties(value, "action")}


def _context(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError("context", f"must be an object, not {_kind(value)}")
    device = value.get("device")
    if device is not None and not isinstance(device, dict):
        raise RequestError("context.device", f"must be an object, not {_kind(device)}")
    return value


def _string(section: Mapping[str, Any], name: str, key: str) -> str:
    value = section.get(key)
    if value is None:
        raise RequestError(f"{name}.{key}", "is required")
    if not isinstance(value, str):
        raise RequestError(f"{name}.{key}", f"must be a string, not {_kind(value)}")
    if not value:
        raise RequestError(f"{name}.{key}", "must not be empty")
    return value


def _properties(section: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = section.get("properties")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"{name}.properties", f"must be an object, not {_kind(value)}")
    return value


def decision_body(decision: Decision, *, include_reasons: bool) -> dict[str, Any]:
    """A Decision on the wire: only ``allow`` is ``true``; the context explains.

    Step-up becomes ``false`` with the claims to ask for, as in the spec's step-up
    example (space-separated ``acr_values``); obligations always travel, because a
    PEP must carry them out. Reasons, risk and errors show how policies are written,
    so they can be switched off.
    """
    context: dict[str, Any] = {"decision_id": decision.decision_id, "effect": decision.effect.value}
    step_up = decision.step_up
    if decision.effect is Effect.STEP_UP and step_up is not None:
        if step_up.acr_values:
            context["acr_values"] = " ".join(step_up.acr_values)
        if step_up.max_age is not None:
            context["max_age"] = step_up.max_age
        amr = getattr(step_up, "amr_values", ())  # a later StepUp may carry amr values
        if amr:
            context["amr_values"] = " ".join(amr)
    if decision.obligations:
        context["obligations"] = [o.to_dict() for o in decision.obligations]
    if include_reasons:
        context["reasons"] = [_without_nulls(r.to_dict()) for r in decision.reasons]
        context["risk"] = decision.risk.to_dict()
        if decision.errors:
            context["errors"] = [e.to_dict() for e in decision.errors]
        context["policy_revision"] = decision.policy_revision
    return {"decision": decision.effect is Effect.ALLOW, "context": context}


def refusal_body(refusal: Refusal) -> dict[str, Any]:
    """A refused request on the wire: ``false``, and the reason's code (never the token)."""
    return {"decision": False, "context": {"error": {"code": refusal.code}}}


def error_item(exc: RequestError) -> dict[str, Any]:
    """A batch item that could not be evaluated: closed, with the error in its context."""
    return {"decision": False, "context": {"error": {"status": 400, "message": str(exc)}}}


def _without_nulls(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
