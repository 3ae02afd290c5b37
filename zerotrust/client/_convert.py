"""AuthZEN 1.0 answers for the client, strictly checked.

Answers are refused rather than guessed: a
``decision`` that is not a boolean, a context that is not an object, or a zerotrust
context that contradicts the decision raises :class:`PDPResponseError`; nothing here
ever turns a doubtful answer into an allow. Nothing here does I/O.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping
from typing import Any

import attrs

from zerotrust.client.errors import PDPResponseError
from zerotrust.decision import (
    Decision,
    Effect,
    EvaluationError,
    Obligation,
    Reason,
    Risk,
    StepUp,
)
from zerotrust.errors import StepUpError

__all__ = [
    "PDPMetadata",
    "SearchPage",
    "batch_decisions",
    "decision_of",
    "metadata_of",
    "parse_json",
    "search_page_of",
]

_ENDPOINT_KEYS = (
    "access_evaluation_endpoint",
    "access_evaluations_endpoint",
    "search_subject_endpoint",
    "search_resource_endpoint",
    "search_action_endpoint",
)


@attrs.frozen
class PDPMetadata:
    """The PDP's metadata (AuthZEN 1.0 section 9): its identifier and each endpoint's
    URL, None where the PDP does not offer that API."""

    policy_decision_point: str
    access_evaluation_endpoint: str | None = None
    access_evaluations_endpoint: str | None = None
    search_subject_endpoint: str | None = None
    search_resource_endpoint: str | None = None
    search_action_endpoint: str | None = None


@attrs.frozen
class SearchPage:
    """One page of search results (AuthZEN 1.0 section 8). ``next_token`` is empty on
    the last page; ``results`` are the entities as the PDP sent them."""

    results: tuple[Mapping[str, Any], ...]
    next_token: str = ""
    count: int | None = None
    total: int | None = None
    context: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


# --- answers ----------------------------------------------------------------------------


def parse_json(raw: bytes, what: str) -> dict[str, Any]:
    """A response body as one JSON object: UTF-8, no duplicate keys (which value would
    count?), no NaN or Infinity (RFC 7493, AuthZEN 1.0 section 10.1.1)."""
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_nan)
    except UnicodeDecodeError as exc:
        raise PDPResponseError(f"{what}: the response body is not UTF-8") from exc
    except RecursionError as exc:
        raise PDPResponseError(f"{what}: the response JSON is nested too deeply") from exc
    except ValueError as exc:
        raise PDPResponseError(f"{what}: the response is not valid JSON: {exc}") from exc
    if type(value) is not dict:
        raise PDPResponseError(f"{what}: the response must be a JSON object, not {_kind(value)}")
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _nan(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def decision_of(body: Any, where: str = "response") -> Decision:
    """A Decision from an AuthZEN decision object (section 5.5).

    With ``context.effect`` (a zerotrust PDP) the context is read in full and must agree
    with ``decision`` (``true`` exactly when the effect is ``allow``). Without it (any
    other PDP), ``true`` is allow and ``false`` deny; the rest of the context is ignored,
    as section 10.1.1 asks of unknown fields.
    """
    if type(body) is not dict:
        raise PDPResponseError(f"{where}: must be an object, not {_kind(body)}")
    verdict = body.get("decision")
    if type(verdict) is not bool:
        raise PDPResponseError(f"{where}.decision: must be a boolean, not {_kind(verdict)}")
    context = body.get("context")
    if context is None:
        context = {}
    if type(context) is not dict:
        raise PDPResponseError(f"{where}.context: must be an object, not {_kind(context)}")
    now = datetime.datetime.now(datetime.UTC)
    if "effect" not in context:
        return Decision(
            effect=Effect.ALLOW if verdict else Effect.DENY,
            reasons=(),
            risk=Risk(),
            step_up=None,
            obligations=(),
            report_only=(),
            errors=(),
            policy_revision="",
            decision_id=_optional_str(context, "decision_id", where) or "",
            evaluated_at=now,
        )
    return _zerotrust_decision(verdict, context, f"{where}.context", now)


def _zerotrust_decision(
    verdict: bool, context: dict[str, Any], where: str, now: datetime.datetime
) -> Decision:
    effect_text = context["effect"]
    if type(effect_text) is not str or effect_text not in {e.value for e in Effect}:
        raise PDPResponseError(f"{where}.effect: must be allow, deny or step_up")
    effect = Effect(effect_text)
    if verdict is not (effect is Effect.ALLOW):
        raise PDPResponseError(
            f"{where}.effect: {effect.value!r} contradicts decision {json.dumps(verdict)}"
        )
    step_up = None
    if effect is Effect.STEP_UP:
        acr = _optional_str(context, "acr_values", where)
        max_age = context.get("max_age")
        if max_age is not None and type(max_age) is not int:
            raise PDPResponseError(f"{where}.max_age: must be an integer, not {_kind(max_age)}")
        try:
            step_up = StepUp(acr_values=tuple(acr.split()) if acr else (), max_age=max_age)
        except StepUpError as exc:
            raise PDPResponseError(f"{where}: {exc}") from exc
    return Decision(
        effect=effect,
        reasons=tuple(
            _reason(r, f"{where}.reasons[{i}]") for i, r in _items(context, "reasons", where)
        ),
        risk=_risk(context.get("risk"), f"{where}.risk"),
        step_up=step_up,
        obligations=tuple(
            _obligation(o, f"{where}.obligations[{i}]")
            for i, o in _items(context, "obligations", where)
        ),
        report_only=(),
        errors=tuple(
            _error(e, f"{where}.errors[{i}]") for i, e in _items(context, "errors", where)
        ),
        policy_revision=_optional_str(context, "policy_revision", where) or "",
        decision_id=_optional_str(context, "decision_id", where) or "",
        evaluated_at=now,
    )


def _items(context: Mapping[str, Any], key: str, where: str) -> list[tuple[int, Any]]:
    value = context.get(key)
    if value is None:
        return []
    if type(value) is not list:
        raise PDPResponseError(f"{where}.{key}: must be an array, not {_kind(value)}")
    return list(enumerate(value))


def _object(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise PDPResponseError(f"{where}: must be an object, not {_kind(value)}")
    return value


def _required_str(section: Mapping[str, Any], key: str, where: str) -> str:
    value = section.get(key)
    if type(value) is not str or not value:
        raise PDPResponseError(f"{where}.{key}: must be a non-empty string, not {_kind(value)}")
    return value


def _optional_str(section: Mapping[str, Any], key: str, where: str) -> str | None:
    value = section.get(key)
    if value is not None and type(value) is not str:
        raise PDPResponseError(f"{where}.{key}: must be a string, not {_kind(value)}")
    return value


def _reason(value: Any, where: str) -> Reason:
    item = _object(value, where)
    effect = _required_str(item, "effect", where)
    if effect not in {e.value for e in Effect}:
        raise PDPResponseError(f"{where}.effect: must be allow, deny or step_up")
    return Reason(
        rule=_required_str(item, "rule", where),
        effect=Effect(effect),
        reason=_optional_str(item, "reason", where),
    )


def _risk(value: Any, where: str) -> Risk:
    if value is None:
        return Risk()
    item = _object(value, where)
    score = item.get("score", 0)
    if type(score) is not int:
        raise PDPResponseError(f"{where}.score: must be an integer, not {_kind(score)}")
    signals = item.get("signals", [])
    if type(signals) is not list or any(type(s) is not str for s in signals):
        raise PDPResponseError(f"{where}.signals: must be an array of strings")
    return Risk(score=score, signals=tuple(signals))


def _obligation(value: Any, where: str) -> Obligation:
    item = _object(value, where)
    kind = _required_str(item, "type", where)
    return Obligation(type=kind, params={k: v for k, v in item.items() if k != "type"})


def _error(value: Any, where: str) -> EvaluationError:
    item = _object(value, where)
    return EvaluationError(
        rule=_required_str(item, "rule", where),
        kind=_required_str(item, "kind", where),
        message=_optional_str(item, "message", where) or "",
    )


def batch_decisions(body: dict[str, Any], sent: int, semantic: str) -> list[Decision]:
    """The decisions of an evaluations response (section 7.2), checked against what was
    sent: one per item under ``execute_all``; under the short-circuit semantics the
    results stop exactly at the first deny (or permit), and only there. A missing
    result is never filled in."""
    results = body.get("evaluations")
    if type(results) is not list:
        raise PDPResponseError(f"evaluations: must be an array, not {_kind(results)}")
    decisions = [decision_of(item, f"evaluations[{i}]") for i, item in enumerate(results)]
    if semantic == "execute_all":
        if len(decisions) != sent:
            raise PDPResponseError(
                f"evaluations: {len(decisions)} results for {sent} requests (execute_all)"
            )
        return decisions
    stop_on_allow = semantic == "permit_on_first_permit"
    if not decisions or len(decisions) > sent:
        raise PDPResponseError(f"evaluations: {len(decisions)} results for {sent} requests")
    for i, decision in enumerate(decisions[:-1]):
        if decision.allowed is stop_on_allow:
            raise PDPResponseError(f"evaluations[{i}]: the batch should have stopped here")
    if len(decisions) < sent and decisions[-1].allowed is not stop_on_allow:
        raise PDPResponseError(
            f"evaluations: {len(decisions)} results for {sent} requests, "
            f"without a stop ({semantic})"
        )
    return decisions


def search_page_of(body: dict[str, Any], kind: str, searched_type: str | None) -> SearchPage:
    """A search response (section 8.5): ``results`` entities of the searched kind (and
    type, when the request named one), and the page's ``next_token`` when paged."""
    results = body.get("results")
    if type(results) is not list:
        raise PDPResponseError(f"results: must be an array, not {_kind(results)}")
    for i, entity in enumerate(results):
        where = f"results[{i}]"
        item = _object(entity, where)
        if kind == "action":
            _required_str(item, "name", where)
            continue
        found = _required_str(item, "type", where)
        _required_str(item, "id", where)
        if searched_type is not None and found != searched_type:
            raise PDPResponseError(f"{where}.type: {found!r} is not the searched {searched_type!r}")
    page = body.get("page")
    next_token, count, total = "", None, None
    if page is not None:
        page = _object(page, "page")
        token = page.get("next_token")
        if type(token) is not str:
            raise PDPResponseError(f"page.next_token: must be a string, not {_kind(token)}")
        next_token = token
        count, total = _count(page, "count"), _count(page, "total")
    context = body.get("context")
    if context is not None:
        _object(context, "context")
    return SearchPage(
        results=tuple(results),
        next_token=next_token,
        count=count,
        total=total,
        context=context or {},
    )


def _count(page: Mapping[str, Any], key: str) -> int | None:
    value = page.get(key)
    if value is not None and (type(value) is not int or value < 0):
        raise PDPResponseError(f"page.{key}: must be a non-negative integer")
    return value


def metadata_of(body: dict[str, Any]) -> PDPMetadata:
    """PDP metadata (section 9.1): an identifier and endpoint URLs, each a string."""
    pdp = _required_str(body, "policy_decision_point", "metadata")
    endpoints = {key: _optional_str(body, key, "metadata") or None for key in _ENDPOINT_KEYS}
    return PDPMetadata(policy_decision_point=pdp, **endpoints)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float) and not math.isfinite(value):
        return "a non-finite number"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
