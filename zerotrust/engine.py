"""PolicyDecisionPoint: one request in, one decision out, logged.

Evaluation is a pure function of the compiled set, the request, the behaviour
features and the clock; everything else (loading, logging, behaviour stores)
happens around it.
"""

from __future__ import annotations

import datetime
import enum
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from zerotrust._recent import RecentDecisions
from zerotrust.audit.record import DecisionLog
from zerotrust.audit.sinks import NullLog
from zerotrust.behavior import BehaviorSource
from zerotrust.behavior.config import StoreErrorMode
from zerotrust.behavior.features import MAX_RECORDS
from zerotrust.behavior.memory import MemoryBehaviorStore
from zerotrust.cel import Backend, default_backend
from zerotrust.decision import Decision, Effect, EvaluationError, StepUp
from zerotrust.errors import RequestError, ZeroTrustError
from zerotrust.evaluation import DEFAULT_DENY, STORE_UNAVAILABLE, decide
from zerotrust.plan import Plan
from zerotrust.plan._planner import Planner, plan_request
from zerotrust.plan._record import plan_record
from zerotrust.policy.loader import load_path, load_texts
from zerotrust.policy.policy_set import PolicySet
from zerotrust.protocols import DecisionPoint, IdentitySource
from zerotrust.request import (
    AccessRequest,
    plain_mapping,
    request_variables,
)

__all__ = [
    "DEFAULT_DENY",
    "STORE_UNAVAILABLE",
    "DecisionPoint",
    "IdentitySource",
    "PolicyDecisionPoint",
    "decide",
]

_log = logging.getLogger("zerotrust")
_ALLOW = Effect.ALLOW
_SCHEMA_MODES = ("off", "report", "enforce")
Clock = Callable[[], datetime.datetime]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _raw(request: Mapping[str, Any] | AccessRequest) -> dict[str, Any]:
    """The caller's request as plain JSON data, for the identity source to read.

    Copied (with every value check of :meth:`AccessRequest.from_mapping`) before any
    credential is read, so a caller's own Mapping or ``str`` subclass never runs inside
    verification and anything it raises is a :class:`RequestError`. Only verified
    credentials name the subject: a pre-built AccessRequest has none, so the resolver
    refuses it (fail closed).
    """
    return plain_mapping(request.to_dict() if isinstance(request, AccessRequest) else request)


def _available(features: Mapping[str, Any] | None) -> bool:
    """Whether behaviour was available (or there is no source): only then is it recorded."""
    return features is None or features.get("available") is not False


class _Default(enum.Enum):
    """``behavior=`` left out: a fresh :class:`MemoryBehaviorStore` (None means none)."""

    MEMORY = "memory"


class PolicyDecisionPoint:
    """Decides requests against a policy set; thread-safe, reloadable.

    Build one with :meth:`from_path`. ``clock`` returns an aware datetime (the CEL
    ``now``; callers can never supply it). ``decision_log`` receives every decision.
    """

    def __init__(
        self,
        policies: PolicySet,
        *,
        clock: Clock | None = None,
        decision_log: DecisionLog | None = None,
        behavior: BehaviorSource | None = None,
        backend: Backend | None = None,
        loader: Callable[[Backend], PolicySet] | None = None,
        identity: IdentitySource | None = None,
        schema_validation: str = "report",
    ) -> None:
        if schema_validation not in _SCHEMA_MODES:
            raise ZeroTrustError(
                f"schema_validation must be one of {', '.join(_SCHEMA_MODES)}, "
                f"not {schema_validation!r}"
            )
        self._schema_mode = schema_validation
        self._set = policies
        self._identity = identity
        self._clock = clock or _utc_now
        self._log = decision_log if decision_log is not None else NullLog()
        self._behavior = behavior
        self._backend = backend or default_backend()
        self._loader = loader
        self._reload_lock = threading.Lock()
        self._failures_lock = threading.Lock()
        self._log_failures = 0
        self._behavior_failures = 0
        self._recent = RecentDecisions()
        self._planner: Planner | None = None

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        *,
        clock: Clock | None = None,
        decision_log: DecisionLog | None = None,
        behavior: BehaviorSource | _Default | None = _Default.MEMORY,
        backend: Backend | None = None,
        identity: IdentitySource | None = None,
        schema_validation: str = "report",
    ) -> PolicyDecisionPoint:
        """Load a policy file or directory; raise :class:`PolicyError` listing every problem."""
        return cls._loaded(
            lambda b: load_path(path, b),
            clock=clock,
            decision_log=decision_log,
            behavior=behavior,
            backend=backend,
            identity=identity,
            schema_validation=schema_validation,
        )

    @classmethod
    def from_texts(
        cls,
        texts: Mapping[str, str],
        *,
        clock: Clock | None = None,
        decision_log: DecisionLog | None = None,
        behavior: BehaviorSource | _Default | None = _Default.MEMORY,
        backend: Backend | None = None,
        identity: IdentitySource | None = None,
        schema_validation: str = "report",
    ) -> PolicyDecisionPoint:
        """Load policies from ``{file name: YAML text}`` (names ending ``.data.yaml`` are data)."""
        frozen = dict(texts)
        return cls._loaded(
            lambda b: load_texts(frozen, b),
            clock=clock,
            decision_log=decision_log,
            behavior=behavior,
            backend=backend,
            identity=identity,
            schema_validation=schema_validation,
        )

    @classmethod
    def _loaded(
        cls,
        loader: Callable[[Backend], PolicySet],
        *,
        clock: Clock | None,
        decision_log: DecisionLog | None,
        behavior: BehaviorSource | _Default | None,
        backend: Backend | None,
        identity: IdentitySource | None,
        schema_validation: str,
    ) -> PolicyDecisionPoint:
        backend = backend or default_backend()
        if behavior is _Default.MEMORY:
            behavior = MemoryBehaviorStore()
        return cls(
            loader(backend),
            clock=clock,
            decision_log=decision_log,
            behavior=behavior,
            backend=backend,
            loader=loader,
            identity=identity,
            schema_validation=schema_validation,
        )

    @property
    def policies(self) -> PolicySet:
        return self._set

    @property
    def revision(self) -> str:
        return self._set.revision

    @property
    def verifies_identity(self) -> bool:
        """Whether ``identity=`` was given: requests must then carry credentials."""
        return self._identity is not None

    @property
    def decision_log_failures(self) -> int:
        """How many decisions the decision log failed to record."""
        return self._log_failures

    @property
    def behavior_store(self) -> BehaviorSource | None:
        """The behaviour store this PDP reads features from and records to, if any."""
        return self._behavior

    @property
    def behavior_failures(self) -> int:
        """How many calls to the behaviour source failed (features then read as unavailable)."""
        return self._behavior_failures

    def reload(self) -> str:
        """Reload from the original source and swap atomically; return the new revision.

        On any error the current set stays in force and :class:`PolicyError` is raised.
        """
        if self._loader is None:
            raise ZeroTrustError(
                "this PolicyDecisionPoint was built from a PolicySet; nothing to reload"
            )
        with self._reload_lock:
            fresh = self._loader(self._backend)
            self._set = fresh
        return fresh.revision

    def evaluate(
        self,
        request: Mapping[str, Any] | AccessRequest,
        *,
        explain: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Decide one request.

        Raises :class:`RequestError` for malformed input and, on a PDP configured with
        ``identity=``, :class:`IdentityError` when the credentials do not verify (nothing
        is evaluated then); :class:`ZeroTrustError` if the clock returns a naive datetime.
        Errors inside policies never raise: they are recorded in the decision and fail
        closed.
        """
        now = self._now()
        return self._evaluate_at(self._prepare(request, now), now, explain, extra)

    def evaluate_many(
        self,
        requests: Iterable[Mapping[str, Any] | AccessRequest],
        *,
        explain: bool = False,
    ) -> list[Decision]:
        """Decide several requests in order; all are validated (and their credentials
        verified) before any is decided."""
        prepared = []
        for request in requests:
            now = self._now()
            prepared.append((self._prepare(request, now), now))
        return [self._evaluate_at(req, now, explain, None) for req, now in prepared]

    def _prepare(
        self, request: Mapping[str, Any] | AccessRequest, now: datetime.datetime
    ) -> AccessRequest:
        if self._identity is not None:
            req = AccessRequest.from_mapping(self._identity.resolve(_raw(request), now=now))
        else:
            req = AccessRequest.from_mapping(request)
        self._enforce_schemas(req)
        return req

    def _enforce_schemas(self, req: AccessRequest) -> None:
        """``enforce``: a request that does not match the set's schemas is refused."""
        checker = self._set.checker
        if checker is not None and self._schema_mode == "enforce":
            checker.enforce(request_variables(req))

    def _evaluate_at(
        self,
        req: AccessRequest,
        now: datetime.datetime,
        explain: bool,
        extra: Mapping[str, Any] | None,
    ) -> Decision:
        features = self._features(req, now)
        decision = self._decide(req, now, features, explain)
        self._after(req, decision, extra, _available(features))
        return decision

    async def evaluate_async(
        self,
        request: Mapping[str, Any] | AccessRequest,
        *,
        explain: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Decision:
        """As :meth:`evaluate`, for event loops: uses the behaviour source's async
        methods when it has them (``features_async`` / ``record_async``) and the identity
        source's ``resolve_async`` (a JWKS refresh never blocks the loop)."""
        now = self._now()
        if self._identity is not None:
            resolved = await self._identity.resolve_async(_raw(request), now=now)
            req = AccessRequest.from_mapping(resolved)
        else:
            req = AccessRequest.from_mapping(request)
        self._enforce_schemas(req)
        features = await self._features_async(req, now)
        decision = self._decide(req, now, features, explain)
        await self._after_async(req, decision, extra, features)
        return decision

    def plan(self, request: Mapping[str, Any], *, extra: Mapping[str, Any] | None = None) -> Plan:
        """A query plan: which resources of the request's ``resource.type`` it may read.

        ``request`` is a request whose resource has a ``type`` only (no ``id``, no
        ``properties``). The plan is logged (``"kind": "plan"``) and counted by the
        behaviour store as one request; report the rows it returned with
        :meth:`record_access` (``plan.decision_id``). Raises :class:`RequestError` as
        :meth:`evaluate` does, and for a resource with an id or properties.
        """
        now = self._now()
        if self._identity is not None:
            request = self._identity.resolve(_raw(request), now=now)
        req = plan_request(request)
        planner, checked = self._planned(req)  # (enforce: refused before it is counted)
        features = self._features(req, now)
        plan = self._plan(planner, checked, req, now, features)
        self._after(req, plan_record(plan, features), extra, _available(features))
        return plan

    async def plan_async(
        self, request: Mapping[str, Any], *, extra: Mapping[str, Any] | None = None
    ) -> Plan:
        """As :meth:`plan`, for event loops (as :meth:`evaluate_async`)."""
        now = self._now()
        if self._identity is not None:
            request = await self._identity.resolve_async(_raw(request), now=now)
        req = plan_request(request)
        planner, checked = self._planned(req)
        features = await self._features_async(req, now)
        plan = self._plan(planner, checked, req, now, features)
        await self._after_async(req, plan_record(plan, features), extra, features)
        return plan

    def _planned(self, req: AccessRequest) -> tuple[Planner, list[EvaluationError]]:
        """The current set's planner, and the request's schema mismatches to report."""
        planner = self._planner
        if planner is None or planner.policies is not self._set:
            planner = self._planner = Planner(self._set)
        return planner, planner.schema_errors(request_variables(req), self._schema_mode)

    def _plan(
        self,
        planner: Planner,
        checked: list[EvaluationError],
        req: AccessRequest,
        now: datetime.datetime,
        features: Mapping[str, Any] | None,
    ) -> Plan:
        mode, required = self._store_error()
        return planner.plan(
            req,
            now,
            features,
            self._backend,
            on_store_error=mode,
            store_error_step_up=required,
            schema_errors=checked,
        )

    async def _features_async(
        self, req: AccessRequest, now: datetime.datetime
    ) -> Mapping[str, Any] | None:
        get_async = getattr(self._behavior, "features_async", None)
        if get_async is None:
            return self._features(req, now)
        try:
            features: Mapping[str, Any] | None = await get_async(req, now)
        except Exception as exc:
            features = self._behavior_failed(exc)
        return features

    async def _after_async(
        self,
        req: AccessRequest,
        decision: Decision,
        extra: Mapping[str, Any] | None,
        features: Mapping[str, Any] | None,
    ) -> None:
        record_async = getattr(self._behavior, "record_async", None)
        if record_async is None:
            self._after(req, decision, extra, _available(features))
            return
        if _available(features):
            try:
                await record_async(req, decision)
                self._recent.remember(req, decision)
            except Exception as exc:
                self._behavior_failed(exc)
        self._emit(req, decision, extra)

    def record_access(
        self,
        decision: str | Decision | Plan | Mapping[str, Any] | AccessRequest,
        *,
        records: int,
    ) -> None:
        """Report how many records a request actually read (a query may return more rows
        than it asked for).

        Given a decision or a plan (or its id) this PDP made recently, its count becomes
        ``records``; given a request, ``records`` are added for its subject now. A
        count above ``MAX_RECORDS`` counts as ``MAX_RECORDS``, as in ``context.records``.
        Raises :class:`RequestError` for a negative count or an unknown decision id.
        """
        if isinstance(records, bool) or not isinstance(records, int) or records < 0:
            raise RequestError("records", "must be an integer >= 0")
        # Counted as context.records is (counted_records): at most MAX_RECORDS, so the
        # store's counters, the features and the logged line stay within 64 bits.
        records = min(records, MAX_RECORDS)
        store = getattr(self._behavior, "record_access", None)
        if isinstance(decision, Plan):
            decision = decision.decision_id
        if isinstance(decision, Decision | str):
            key = decision if isinstance(decision, str) else decision.decision_id
            req, at, delta = self._recent.recount(key, records)
        else:
            req, at, delta = AccessRequest.from_mapping(decision), self._now(), records
        if store is None or not delta:
            return
        try:
            store(req, at, delta)
        except Exception as exc:
            self._behavior_failed(exc)

    def _decide(
        self,
        req: AccessRequest,
        now: datetime.datetime,
        features: Mapping[str, Any] | None,
        explain: bool,
    ) -> Decision:
        mode, required = self._store_error()
        decision = decide(
            self._set,
            req,
            now,
            features,
            self._backend,
            explain=explain,
            on_store_error=mode,
            store_error_step_up=required,
            # The memory store's map holds only counts, ratios and group texts built
            # from validated requests; another source's map is checked when logged.
            features_plain=type(self._behavior) is MemoryBehaviorStore,
        )
        checker = self._set.checker
        if checker is None or self._schema_mode != "report":
            return decision
        return checker.reported(decision, request_variables(req))

    def _store_error(self) -> tuple[StoreErrorMode, StepUp | None]:
        """The behaviour source's ``on_store_error`` and its step-up (the defaults without)."""
        mode = getattr(self._behavior, "on_store_error", StoreErrorMode.EVALUATE)
        required = getattr(self._behavior, "store_error_step_up", None)
        mode = mode if type(mode) is StoreErrorMode else StoreErrorMode(mode)
        return mode, required if isinstance(required, StepUp) else None

    def _now(self) -> datetime.datetime:
        now = self._clock()
        if not isinstance(now, datetime.datetime) or now.tzinfo is None:
            raise ZeroTrustError("the PDP clock must return a timezone-aware datetime")
        return now

    def _features(self, req: AccessRequest, now: datetime.datetime) -> Mapping[str, Any] | None:
        """The source's features for this request, or None without a source."""
        if self._behavior is None:
            return None
        try:
            return self._behavior.features(req, now)
        except Exception as exc:
            return self._behavior_failed(exc)

    def _behavior_failed(self, exc: BaseException) -> Mapping[str, Any]:
        with self._failures_lock:
            self._behavior_failures += 1
        _log.error("behaviour source failed: %s: %s", type(exc).__name__, exc)
        return {"available": False}

    def _after(
        self,
        req: AccessRequest,
        decision: Decision,
        extra: Mapping[str, Any] | None,
        available: bool = True,
    ) -> None:
        # A decision made without behaviour is not recorded: its request was not counted.
        if self._behavior is not None and available:
            try:
                self._behavior.record(req, decision)
                self._recent.remember(req, decision)
            except Exception as exc:
                self._behavior_failed(exc)
        self._emit(req, decision, extra)

    def _emit(
        self, req: AccessRequest, decision: Decision, extra: Mapping[str, Any] | None
    ) -> None:
        try:
            self._log.emit(decision, req, extra or {})
        except Exception as exc:
            # A broken audit sink must not crash or change the decision; it must be loud.
            with self._failures_lock:
                self._log_failures += 1
            _log.error(
                "decision log failed for decision %s: %s: %s",
                decision.decision_id,
                type(exc).__name__,
                exc,
            )
