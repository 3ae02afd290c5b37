"""The AuthZEN operations over a PolicyDecisionPoint, without HTTP.

Each method takes a decoded JSON body and returns the response body, or raises
:class:`RequestError` (the whole payload is bad: 400) or :class:`RequestTimeout`.
They run in worker threads, so they check a deadline between decisions: a timed-out
batch or search stops soon instead of running on after its caller has gone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from zerotrust.decision import Decision
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.errors import RequestError, ZeroTrustError
from zerotrust.server.config import ServerConfig, ServerConfigError
from zerotrust.server.entities import DATA_KEY, Entities, entities_from_mapping
from zerotrust.server.metrics import Metrics
from zerotrust.server.protocol import (
    BatchRequest,
    SearchKind,
    Semantic,
    decision_body,
    error_item,
    parse_batch,
    parse_evaluation,
    parse_search,
)
from zerotrust.server.search import PageTokens, candidates

__all__ = ["RequestTimeout", "Service"]

_log = logging.getLogger("zerotrust.server")


class RequestTimeout(ZeroTrustError, TimeoutError):
    """A request ran past ``request_timeout``; the server answers 503."""


class Service:
    """Decides AuthZEN requests with one PDP, one config and one set of entities."""

    def __init__(
        self,
        pdp: PolicyDecisionPoint,
        config: ServerConfig,
        metrics: Metrics,
        tokens: PageTokens,
        entities: Entities | None = None,
    ) -> None:
        self._pdp = pdp
        self._config = config
        self._metrics = metrics
        self._tokens = tokens
        self._fixed_entities = entities
        self._cache_lock = threading.Lock()
        self._cached: tuple[str, Entities] | None = None
        if entities is None:
            self._data_entities(strict=True)  # a broken entities key fails at start-up

    @property
    def pdp(self) -> PolicyDecisionPoint:
        return self._pdp

    def evaluation(
        self, body: Mapping[str, Any], deadline: float, meta: Mapping[str, Any]
    ) -> dict[str, Any]:
        """POST /access/v1/evaluation."""
        request = parse_evaluation(body)
        _check(deadline)
        return self._body(self._decide(request, meta))

    def evaluations(
        self, body: Mapping[str, Any], deadline: float, meta: Mapping[str, Any]
    ) -> dict[str, Any]:
        """POST /access/v1/evaluations, with the three evaluation semantics."""
        parsed = parse_batch(body)
        if not isinstance(parsed, BatchRequest):
            return self._body(self._decide(parsed, meta))
        if len(parsed.items) > self._config.max_evaluations:
            raise RequestError(
                "evaluations", f"at most {self._config.max_evaluations} evaluations per request"
            )
        results: list[dict[str, Any]] = []
        for index, item in enumerate(parsed.items):
            _check(deadline)
            status = 200
            if isinstance(item, RequestError):
                body_, allowed, status = error_item(item), False, 400
            else:
                try:
                    decision = self._decide(item, {**meta, "item": index})
                except RequestError as exc:  # the library's own limits (depth, size)
                    body_, allowed, status = error_item(exc), False, 400
                else:
                    body_, allowed = self._body(decision), decision.allowed
            if parsed.semantic is Semantic.DENY_ON_FIRST_DENY and not allowed:
                # The spec's example marks where the batch stopped, and why.
                context = body_.setdefault("context", {})
                context.update({"code": str(status), "reason": Semantic.DENY_ON_FIRST_DENY.value})
                results.append(body_)
                break
            results.append(body_)
            if parsed.semantic is Semantic.PERMIT_ON_FIRST_PERMIT and allowed:
                break
        return {"evaluations": results}

    def search(
        self, kind: SearchKind, body: Mapping[str, Any], deadline: float, meta: Mapping[str, Any]
    ) -> dict[str, Any]:
        """POST /access/v1/search/{subject,resource,action}: decide every candidate."""
        query = parse_search(kind, body)
        policy_actions = (
            self._pdp.policies.action_names(query.resource["type"])
            if kind is SearchKind.ACTION
            else ()
        )
        found = candidates(query, self.entities(), policy_actions)
        start = 0
        if query.page is not None and query.page.token is not None:
            start = self._tokens.decode(query.page.token, query.fingerprint)
        limit = self._config.search_max_results
        if query.page is not None and query.page.limit is not None:
            limit = min(limit, query.page.limit)
        results: list[Mapping[str, Any]] = []
        next_index: int | None = None
        for index in range(start, len(found)):
            _check(deadline)
            decision = self._decide(found[index].request, {**meta, "search": kind.value})
            if not decision.allowed:
                continue
            if len(results) == limit:
                next_index = index  # looked ahead: there is a further result
                break
            results.append(found[index].result)
        out: dict[str, Any] = {}
        if query.page is not None or next_index is not None:
            token = "" if next_index is None else self._tokens.encode(next_index, query.fingerprint)
            out["page"] = {"next_token": token, "count": len(results)}
        out["results"] = [dict(r) for r in results]
        return out

    def entities(self) -> Entities:
        """The search candidates: the entities file, else the policy data's ``entities``."""
        if self._fixed_entities is not None:
            return self._fixed_entities
        return self._data_entities(strict=False)

    def _data_entities(self, *, strict: bool) -> Entities:
        policies = self._pdp.policies
        with self._cache_lock:
            cached = self._cached
        if cached is not None and cached[0] == policies.revision:
            return cached[1]
        raw = policies.data.get(DATA_KEY)
        try:
            found = (
                Entities() if raw is None else entities_from_mapping(raw, origin="data.entities")
            )
        except ServerConfigError:
            if strict:
                raise
            _log.error("policy data key 'entities' is invalid; searches find nothing")
            found = Entities()
        with self._cache_lock:
            self._cached = (policies.revision, found)
        return found

    def _decide(self, request: Mapping[str, Any], meta: Mapping[str, Any]) -> Decision:
        decision = self._pdp.evaluate(request, extra=meta)
        self._metrics.decision(decision.effect.value)
        return decision

    def _body(self, decision: Decision) -> dict[str, Any]:
        return decision_body(decision, include_reasons=self._config.include_reasons)


def _check(deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
    if clock() > deadline:
        raise RequestTimeout("the request took longer than the configured timeout")
