"""The AuthZEN operations over a PolicyDecisionPoint, without HTTP.

Each method takes a decoded JSON body and returns the response body, or raises
:class:`RequestError` (the whole payload is bad: 400) or :class:`RequestTimeout`.
They run in worker threads, so they check a deadline between decisions: a timed-out
batch or search stops soon instead of running on after its caller has gone.

When the PDP verifies identity, every request (batch items and search candidates
included) goes through :func:`with_credentials` and the PDP's verification; a request
whose credentials fail is answered ``false`` with the failure's code, counted, and
logged by code only. ``header_token`` is the token a PEP forwarded in a header; it is
never put in ``meta``, which the decision log records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from zerotrust.decision import Decision
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.errors import IdentityError, RequestError, ZeroTrustError
from zerotrust.server.config import ServerConfig, ServerConfigError
from zerotrust.server.entities import DATA_KEY, Entities, entities_from_mapping
from zerotrust.server.metrics import Metrics
from zerotrust.server.protocol import (
    BatchRequest,
    Refusal,
    SearchKind,
    SearchRequest,
    Semantic,
    decision_body,
    error_item,
    parse_batch,
    parse_evaluation,
    parse_search,
    refusal_body,
    with_credentials,
)
from zerotrust.server.search import PageTokens, candidates
from zerotrust.server.tracing import Tracing

if TYPE_CHECKING:
    from zerotrust.server.plan_search import PlanSearch

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
        tracing: Tracing | None = None,
    ) -> None:
        self._pdp = pdp
        self._tracing = tracing
        self._config = config
        # Read defensively, as for metrics: a PDP double without the property verifies nothing.
        self._identity = getattr(pdp, "verifies_identity", False) is True
        if config.identity is not None and not self._identity:
            raise ServerConfigError(
                [
                    "the configuration has an identity section but the PDP verifies no "
                    "identity: build it with identity=build_identity(config.identity)"
                ]
            )
        self._subject_type = config.identity.subject_type if config.identity else None
        self._metrics = metrics
        self._tokens = tokens
        self._fixed_entities = entities
        self._cache_lock = threading.Lock()
        self._cached: tuple[str, Entities] | None = None
        if entities is None:
            self._data_entities(strict=True)  # a broken entities key fails at start-up
        self._database: PlanSearch | None = None
        if config.search_database is not None:
            from zerotrust.server.plan_search import PlanSearch

            self._database = PlanSearch(config.search_database)

    @property
    def pdp(self) -> PolicyDecisionPoint:
        return self._pdp

    @property
    def verifies_identity(self) -> bool:
        """Whether requests must carry a subject token (the PDP verifies identity)."""
        return self._identity

    def evaluation(
        self,
        body: Mapping[str, Any],
        deadline: float,
        meta: Mapping[str, Any],
        header_token: str | None = None,
    ) -> dict[str, Any]:
        """POST /access/v1/evaluation."""
        request = parse_evaluation(body, identity=self._identity)
        _check(deadline)
        return self._body(self._decide(request, meta, header_token))

    def evaluations(
        self,
        body: Mapping[str, Any],
        deadline: float,
        meta: Mapping[str, Any],
        header_token: str | None = None,
    ) -> dict[str, Any]:
        """POST /access/v1/evaluations, with the three evaluation semantics."""
        parsed = parse_batch(body, identity=self._identity)
        if not isinstance(parsed, BatchRequest):
            return self._body(self._decide(parsed, meta, header_token))
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
                    decision = self._decide(item, {**meta, "item": index}, header_token)
                except RequestError as exc:  # the library's own limits (depth, size)
                    body_, allowed, status = error_item(exc), False, 400
                else:
                    body_ = self._body(decision)
                    allowed = isinstance(decision, Decision) and decision.allowed
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
        self,
        kind: SearchKind,
        body: Mapping[str, Any],
        deadline: float,
        meta: Mapping[str, Any],
        header_token: str | None = None,
    ) -> dict[str, Any]:
        """POST /access/v1/search/{subject,resource,action}: decide every candidate
        (for a resource type ``search_database`` maps: one plan, run as a query).

        A refused caller gets no results and the refusal's code in ``context``: the
        credentials are the caller's, so the first refusal ends the search.
        """
        query = parse_search(kind, body, identity=self._identity)
        policy_actions = (
            self._pdp.policies.action_names(query.resource["type"])
            if kind is SearchKind.ACTION
            else ()
        )
        limit = self._config.search_max_results
        if query.page is not None and query.page.limit is not None:
            limit = min(limit, query.page.limit)
        entities = self.entities()
        database = self._database
        if kind is SearchKind.RESOURCE and database and database.maps(query.resource["type"]):
            if not query.resource.get("properties"):  # else the PEP's values decide
                planned = self._planned(query, database, limit, deadline, meta, header_token)
                if planned is not None:
                    return planned
            entities = database.entities(query.resource["type"])  # its rows one by one
        found = candidates(query, entities, policy_actions)
        start = 0
        if query.page is not None and query.page.token is not None:
            start = self._tokens.decode(query.page.token, query.fingerprint)
        results: list[Mapping[str, Any]] = []
        next_index: int | None = None
        for index in range(start, len(found)):
            _check(deadline)
            decision = self._decide(
                found[index].request, {**meta, "search": kind.value}, header_token
            )
            if isinstance(decision, Refusal):
                return _refused_search(decision)
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

    def _planned(
        self,
        query: SearchRequest,
        database: PlanSearch,
        limit: int,
        deadline: float,
        meta: Mapping[str, Any],
        header_token: str | None,
    ) -> dict[str, Any] | None:
        """A resource search as one plan and one query; None when the plan is not a
        filter of the table (the rows are then decided one by one)."""
        request: Mapping[str, Any] = {
            "subject": query.subject,
            "action": query.action,
            "resource": {"type": query.resource["type"]},
            "context": query.context,
            "device": query.context.get("device") or {},
        }
        meta = {**meta, "search": SearchKind.RESOURCE.value}
        if self._identity:
            prepared = with_credentials(request, header_token, self._subject_type)
            if isinstance(prepared, Refusal):
                return _refused_search(self._refused(prepared, meta))
            request = prepared
        try:
            plan = self._pdp.plan(request, extra=meta)
        except IdentityError as exc:
            return _refused_search(self._refused(Refusal(exc.code), meta))
        _check(deadline)
        token = query.page.token if query.page is not None else None
        page = database.page(plan, self._tokens, query.fingerprint, token, limit)
        if page is None:
            return None
        self._pdp.record_access(plan, records=len(page.ids))
        out: dict[str, Any] = {}
        if query.page is not None or page.next_token:
            out["page"] = {"next_token": page.next_token, "count": len(page.ids)}
        out["results"] = [{"type": plan.resource_type, "id": id_} for id_ in page.ids]
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

    def _decide(
        self, request: Mapping[str, Any], meta: Mapping[str, Any], header_token: str | None
    ) -> Decision | Refusal:
        if self._tracing is None:
            return self._decided(request, meta, header_token)
        with self._tracing.decision(meta) as span:
            found = self._decided(request, meta, header_token)
            if isinstance(found, Refusal):
                self._tracing.record(span, None, found.code)
            else:
                self._tracing.record(span, found)
            return found

    def _decided(
        self, request: Mapping[str, Any], meta: Mapping[str, Any], header_token: str | None
    ) -> Decision | Refusal:
        if self._identity:
            prepared = with_credentials(request, header_token, self._subject_type)
            if isinstance(prepared, Refusal):
                return self._refused(prepared, meta)
            request = prepared
        began = time.perf_counter()
        try:
            decision = self._pdp.evaluate(request, extra=meta)
        except IdentityError as exc:
            return self._refused(Refusal(exc.code), meta)
        self._metrics.decision(decision.effect.value, time.perf_counter() - began)
        return decision

    def _refused(self, refusal: Refusal, meta: Mapping[str, Any]) -> Refusal:
        self._metrics.identity_failure(refusal.code)
        # The code and where, never the token or the verifier's message.
        _log.info(
            "credentials refused: %s (endpoint %s, request %s)",
            refusal.code,
            meta.get("endpoint"),
            meta.get("request_id"),
        )
        return refusal

    def _body(self, decision: Decision | Refusal) -> dict[str, Any]:
        if isinstance(decision, Refusal):
            return refusal_body(decision)
        return decision_body(decision, include_reasons=self._config.include_reasons)


def _refused_search(refusal: Refusal) -> dict[str, Any]:
    return {"context": refusal_body(refusal)["context"], "results": []}


def _check(deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
    if clock() > deadline:
        raise RequestTimeout("the request took longer than the configured timeout")
