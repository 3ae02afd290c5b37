"""The enforcement point both middlewares share: request in, access request, answer out.

Adapters do only I/O (read the scope or environ, await or call the PDP, write the
answer); every choice about what to believe and how to answer is made here, once.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

import attrs

from zerotrust.decision import Decision, Effect, StepUp
from zerotrust.engine import DecisionPoint
from zerotrust.errors import DecisionUnavailableError, IdentityError, RequestError
from zerotrust.request import AccessRequest
from zerotrust.web.challenges import (
    PROBLEM_JSON,
    bearer_challenge,
    problem_body,
    step_up_challenge,
)
from zerotrust.web.errors import ObligationError, WebConfigError
from zerotrust.web.http import (
    HttpRequest,
    Resolver,
    Target,
    WebConfig,
    as_resolver,
    client_ip,
    peer_is_trusted,
)
from zerotrust.web.obligations import ObligationPlan

__all__ = [
    "BODY_DIGESTS",
    "HTTP_CONTEXT_KEYS",
    "Gate",
    "Identity",
    "Part",
    "Prepared",
    "Reply",
    "Verdict",
    "delegated_body",
    "request_part",
    "rewrite_json",
]

#: One part of the request (``properties``, ``context``) as an integration declares it: a
#: fixed mapping, or a function of the view's arguments returning one.
Part = Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None

_log = logging.getLogger("zerotrust.web")

UNMATCHED_RESOURCE = "zerotrust:unmatched_route"
ANONYMOUS = {"type": "anonymous", "id": "anonymous"}
STATE_KEY = "zerotrust"
REQUEST_STATE_KEY = "zerotrust_request"
_NO_STORE = ("cache-control", "no-store")
#: The context keys the enforcement point reads from the HTTP request (``path_params``
#: from the route table). They win over a resolver's context and @require's arguments,
#: whether or not this request gave them a value (an unknown ``ip`` stays unknown).
HTTP_CONTEXT_KEYS = frozenset(
    {"ip", "country", "time", "user_agent", "method", "path", "route", "websocket", "path_params"}
)

# The access request of the HTTP request being handled, for @require deeper in the call
# stack. A ContextVar, not a global: each task and thread sees only its own request.
CURRENT_REQUEST: ContextVar[AccessRequest | None] = ContextVar(
    "zerotrust_current_request", default=None
)


@attrs.frozen
class Reply:
    """A complete response the enforcement point sends instead of running the app.

    ``code`` (e.g. ``access_denied``) and ``decision_id`` are also in the body; a
    WebSocket refusal that cannot send a body puts them in its close reason.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    code: str = ""
    decision_id: str | None = None


@attrs.frozen
class Identity:
    """Who is calling, or why that could not be established."""

    subject: Mapping[str, Any] | None
    device: Mapping[str, Any]
    error: str | None = None  # a stable IdentityError code
    missing: bool = False


@attrs.frozen
class Prepared:
    """The access request for the PDP, and what the adapter must remember about it."""

    access: AccessRequest
    extra: Mapping[str, Any]
    identity: Identity
    target: Target | None
    websocket: bool = False


@attrs.frozen
class Verdict:
    """What to do: send ``reply``, or run the app (then ``plan`` rewrites its JSON)."""

    reply: Reply | None
    decision: Decision
    plan: ObligationPlan | None = None


def _verify_identity(config: WebConfig, http: HttpRequest) -> Identity:
    """The only place that calls the identity package (its API may still move)."""
    try:
        if config.identify is not None:
            found = config.identify(http)
            subject = found.to_dict() if hasattr(found, "to_dict") else dict(found)
        else:
            scheme, _, token = (http.header("authorization") or "").strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                return Identity(None, {}, error="missing_token", missing=True)
            if config.jwt is None:  # WebConfig guarantees one of identify / jwt
                raise WebConfigError("no JWT verifier configured")
            subject = config.jwt.verify(token).to_dict()
    except IdentityError as exc:
        return Identity(None, {}, error=exc.code)
    return Identity(subject, _verify_device(config, http, subject.get("id")))


def _verify_device(config: WebConfig, http: HttpRequest, subject_id: Any) -> Mapping[str, Any]:
    attestation = http.header(config.device_header)
    if config.device is None:
        return {"verified": False}
    from zerotrust.identity import unverified_device

    if not attestation:
        return unverified_device()
    try:
        sid = subject_id if isinstance(subject_id, str) else None
        return config.device.verify(attestation.strip(), subject_id=sid)
    except IdentityError as exc:
        # A bad attestation vouches for nothing: the policies see an unverified device.
        return {**unverified_device(), "error": exc.code}


class Gate:
    """Resolve, authenticate, build the access request, turn the decision into an answer."""

    def __init__(
        self,
        pdp: DecisionPoint,
        resolve: Mapping[str, Any] | Resolver,
        config: WebConfig,
    ) -> None:
        if not isinstance(config, WebConfig):
            raise WebConfigError("config must be a zerotrust.web.WebConfig")
        self.pdp = pdp
        self.resolve = as_resolver(resolve)
        self.config = config

    def would_block(self, http: HttpRequest) -> bool:
        """Whether authenticating may fetch keys over the network (run it in a thread)."""
        cfg = self.config
        if cfg.jwt is not None:
            _, _, token = (http.header("authorization") or "").partition(" ")
            if token.strip() and cfg.jwt.would_block(token.strip()):
                return True
        attestation = http.header(cfg.device_header)
        return bool(cfg.device is not None and attestation and cfg.device.would_block(attestation))

    def identify(self, http: HttpRequest) -> Identity:
        return _verify_identity(self.config, http)

    def prepare(
        self, http: HttpRequest, target: Target | None, identity: Identity
    ) -> Prepared | Reply:
        """The access request; an unmatched route or a failed identity is asked about too,
        so that every outcome is in the decision log."""
        cfg = self.config
        peer_trusted = peer_is_trusted(http.peer, cfg.trusted_proxies)
        context: dict[str, Any] = dict(target.context) if target is not None else {}
        ip = client_ip(http.peer, http.header("x-forwarded-for"), cfg.trusted_proxies)
        http_context: dict[str, Any] = {
            "ip": ip,
            "country": _country(http, cfg) if peer_trusted else None,
            "time": cfg.clock().isoformat(),
            "user_agent": http.header("user-agent"),
            "method": http.method,
            "path": http.path,
            "route": target.route if target is not None else None,
            "websocket": True if http.websocket else None,
        }
        context.update({k: v for k, v in http_context.items() if v is not None})
        if target is None:
            resource: dict[str, Any] = {
                "type": UNMATCHED_RESOURCE,
                "id": f"{http.route_method} {http.path}",
            }
            action = f"http:{http.route_method}"
        else:
            resource = {
                "type": target.resource_type,
                "id": target.resource_id,
                "properties": dict(target.resource_properties),
            }
            action = target.action
        subject = identity.subject
        if subject is None:
            subject = {**ANONYMOUS, "properties": {"identity_error": identity.error}}
        extra: dict[str, Any] = {"http": _logged_http(http, target, cfg)}
        if identity.error is not None:
            extra["enforcement"] = identity.error
        elif target is None:
            extra["enforcement"] = "unmatched_route"
        try:
            access = AccessRequest.from_mapping(
                {
                    "subject": subject,
                    "action": {"name": action},
                    "resource": resource,
                    "device": dict(identity.device),
                    "context": context,
                }
            )
        except RequestError as exc:
            _log.error("cannot build an access request for %s %s: %s", http.method, http.path, exc)
            return self._reply(403, "unevaluable_request", "The request could not be evaluated")
        return Prepared(access, extra, identity, target, http.websocket)

    def verdict(self, decision: Decision, prepared: Prepared) -> Verdict:
        """Enforce the decision; an identity failure or unmatched route refuses regardless."""
        cfg, identity = self.config, prepared.identity
        if identity.error is not None:
            challenge = bearer_challenge(
                None if identity.missing else "invalid_token",
                description=None if identity.missing else "The access token is not valid",
                realm=cfg.realm,
            )
            detail = "A bearer token is required" if identity.missing else "The token is invalid"
            code = "missing_token" if identity.missing else "invalid_token"
            # With reasons exposed (debug), why the token failed, not the reasons of the
            # anonymous request the policies saw: that is what the developer must fix.
            why = {"token_error": identity.error} if cfg.expose_reasons else None
            reply = self._reply(
                401, code, detail, decision, challenge=challenge, extra=why, reasons=False
            )
            return Verdict(reply, decision)
        if prepared.target is None:
            return Verdict(
                self._reply(403, "unmatched_route", "No route is configured here", decision),
                decision,
            )
        if decision.effect is not Effect.ALLOW:
            return Verdict(self.refusal(decision), decision)
        handled = cfg.handled_obligations
        if prepared.websocket:
            handled |= cfg.websocket_handled_obligations
        try:
            plan = ObligationPlan.compile(
                decision.obligations, tokenizer=cfg.tokenizer, handled=handled
            )
        except ObligationError as exc:
            # The PDP logged an allow; say loudly that the PEP refused it.
            _log.warning("decision %s refused: %s", decision.decision_id, exc)
            return Verdict(
                self._reply(
                    403,
                    "obligation_unsupported",
                    "Access denied: an obligation cannot be carried out",
                    decision,
                ),
                decision,
            )
        if not (cfg.apply_obligations and plan):
            return Verdict(None, decision, None)
        if prepared.websocket:
            # Messages on a stream are not one JSON document the PEP can rewrite: rather
            # than let unmasked data flow, the app must declare it handles these itself.
            _log.warning(
                "decision %s refused: obligations %s on a WebSocket are not handled by the app",
                decision.decision_id,
                ", ".join(plan.types),
            )
            return Verdict(
                self._reply(
                    403,
                    "obligation_unsupported",
                    "Access denied: obligations cannot be applied to a WebSocket stream",
                    decision,
                ),
                decision,
            )
        return Verdict(None, decision, plan)

    def decide(self, prepared: Prepared) -> Decision | Reply:
        """The PDP's decision, a 503 when none could be had (a remote PDP down), or a 400
        when the PDP refuses the request (one off its attribute schemas, ``enforce``)."""
        try:
            return self.pdp.evaluate(prepared.access, extra=prepared.extra)
        except DecisionUnavailableError as exc:
            return self.unavailable(exc)
        except RequestError as exc:
            return self.invalid(exc)

    async def decide_async(self, prepared: Prepared) -> Decision | Reply:
        """:meth:`decide` for async frameworks."""
        try:
            return await self.pdp.evaluate_async(prepared.access, extra=prepared.extra)
        except DecisionUnavailableError as exc:
            return self.unavailable(exc)
        except RequestError as exc:
            return self.invalid(exc)

    def invalid(self, exc: RequestError) -> Reply:
        """Refused, undecided: the message names the field, which the caller can fix."""
        _log.info("request refused by the PDP: %s", exc)
        return self._reply(400, "invalid_request", str(exc))

    def unavailable(self, exc: DecisionUnavailableError) -> Reply:
        """Refused for want of a decision: try again later, never run the app."""
        _log.error("no decision, request refused: %s", exc)
        reply = self._reply(503, "pdp_unavailable", "No access decision could be made")
        return attrs.evolve(reply, headers=(*reply.headers, ("retry-after", "1")))

    def refusal(self, decision: Decision) -> Reply:
        """The answer to a decision that is not allow: a step-up challenge or a denial.

        Public so that a refusal raised past the gate (``@require`` inside a view) is
        answered exactly as the gate answers its own.
        """
        if decision.effect is Effect.STEP_UP:
            step_up = decision.step_up or StepUp()
            description = self._reason(decision) if self.config.expose_reasons else None
            challenge = step_up_challenge(step_up, description=description, realm=self.config.realm)
            extra = {"acr_values": list(step_up.acr_values), "max_age": step_up.max_age}
            return self._reply(
                401,
                "step_up_required",
                "Stronger or more recent authentication is required",
                decision,
                challenge=challenge,
                extra=extra,
            )
        return self._reply(403, "access_denied", "Access denied by policy", decision)

    def failed_obligation(self, decision: Decision, why: str) -> Reply:
        """The answer when a response cannot be rewritten: withheld, never sent unmasked."""
        _log.error("decision %s: response withheld: %s", decision.decision_id, why)
        return self._reply(500, "obligation_failed", "The response could not be released", decision)

    def _reason(self, decision: Decision) -> str | None:
        for reason in decision.reasons:
            if reason.effect is decision.effect and reason.reason:
                return reason.reason
        return None

    def _reply(
        self,
        status: int,
        code: str,
        detail: str,
        decision: Decision | None = None,
        *,
        challenge: str | None = None,
        extra: Mapping[str, Any] | None = None,
        reasons: bool = True,
    ) -> Reply:
        more: dict[str, Any] = dict(extra or {})
        if reasons and decision is not None and self.config.expose_reasons:
            more["reasons"] = [r.to_dict() for r in decision.reasons]
        body = problem_body(
            status,
            detail=detail,
            code=code,
            decision_id=decision.decision_id if decision is not None else None,
            type_base=self.config.problem_type_base,
            extra=more,
        )
        headers = [("content-type", PROBLEM_JSON), ("content-length", str(len(body))), _NO_STORE]
        if challenge is not None:
            headers.append(("www-authenticate", challenge))
        decision_id = decision.decision_id if decision is not None else None
        return Reply(status, tuple(headers), body, code, decision_id)


def _logged_http(http: HttpRequest, target: Target | None, cfg: WebConfig) -> dict[str, Any]:
    """``extra.http`` for the decision log: the raw path only if the operator asked."""
    route = target.route if target is not None else None
    logged: dict[str, Any] = {"method": http.method}
    if cfg.log_path == "raw":
        logged["path"] = http.path
    elif route is not None and (template := route.partition(" ")[2]):
        logged["path"] = template
    logged["route"] = route
    if http.websocket:
        logged["websocket"] = True
    return logged


def _country(http: HttpRequest, cfg: WebConfig) -> str | None:
    if cfg.country_header is None:
        return None
    value = (http.header(cfg.country_header) or "").strip().upper()
    return value if len(value) == 2 and value.isascii() and value.isalnum() else None


#: Headers by which an app hands its body to the front server (nginx, Apache, lighttpd),
#: which then sends a file the enforcement point never saw.
_DELEGATED_BODY = frozenset({"x-sendfile", "x-accel-redirect", "x-lighttpd-send-file"})


#: Headers computed from the body the app wrote: after a rewrite they describe (and
#: let a caller test guesses of) the unmasked body. Dropped from a rewritten response.
BODY_DIGESTS = frozenset({"etag", "content-md5", "digest", "content-digest", "repr-digest"})


def delegated_body(headers: list[tuple[str, str]]) -> str | None:
    """Why obligations cannot apply to a response whose body the front server will
    send (``X-Sendfile``, ``X-Accel-Redirect``): its empty body is not what leaves."""
    for name, _ in headers:
        if name.lower() in _DELEGATED_BODY:
            return f"the body is sent by the front server ({name})"
    return None


def rewrite_json(
    status: int, headers: list[tuple[str, str]], body: bytes, plan: ObligationPlan
) -> bytes | str:
    """The response body with obligations applied, or why it cannot be rewritten.

    Only a success (``status`` 2xx) is the resource. Any other response is the app's or
    the framework's answer (an HTML 404 page from ``abort(404)`` or ``Http404``, the
    small page of Flask's ``redirect()``): one that is not JSON is released as it is,
    and a JSON one has its fields masked and tokenized but is not ``limit``-ed (it
    holds no list of records to cut).
    """
    found = {k.lower(): v for k, v in headers}
    media = found.get("content-type", "").split(";")[0].strip().lower()
    is_json = media == "application/json" or media.endswith("+json")
    if not 200 <= status < 300:
        if not is_json:
            return body
        plan = plan.without_limits()
    if found.get("content-encoding", "identity").strip().lower() != "identity":
        return "response is content-encoded"
    if not is_json:
        return "response is not JSON"
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return "response is not valid JSON"
    try:
        released = plan.apply(payload)
    except ObligationError as exc:  # e.g. a limit with no list of records to cut
        return str(exc)
    return json.dumps(released, separators=(",", ":")).encode()


def request_part(value: Part) -> Callable[[Mapping[str, Any]], Mapping[str, Any] | None]:
    """A function from the bound arguments to one part of the request."""
    if value is None:
        return lambda arguments: None
    if isinstance(value, Mapping):
        fixed = dict(value)
        return lambda arguments: fixed
    if not callable(value):
        raise WebConfigError("require: request parts are mappings or functions")
    params = inspect.signature(value).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return lambda arguments: value(**arguments)
    names = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    return lambda arguments: value(**{n: arguments[n] for n in names if n in arguments})
