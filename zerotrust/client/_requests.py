"""AuthZEN 1.0 requests for the client, written as ``zerotrust serve`` reads them back.

The device travels as ``context.device`` (AuthZEN has no device entity; see
docs/server.md); a library request is validated exactly as a local PDP validates it,
so the same input fails the same way. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from zerotrust.errors import RequestError
from zerotrust.request import AccessRequest

__all__ = [
    "SEARCH_KINDS",
    "SEMANTICS",
    "SearchKind",
    "batch_body",
    "check_semantic",
    "evaluation_body",
    "search_body",
    "search_key",
    "searched_type",
]

SearchKind = Literal["subject", "resource", "action"]
SEARCH_KINDS: tuple[str, ...] = ("subject", "resource", "action")
#: AuthZEN 1.0 section 7.1.2.1: how a batch runs.
SEMANTICS: tuple[str, ...] = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")


def evaluation_body(request: Mapping[str, Any] | AccessRequest) -> dict[str, Any]:
    """An AuthZEN evaluation body for a library request, as the server reads it back.

    A mapping is validated as :meth:`AccessRequest.from_mapping` does for a local PDP
    (so the same input fails the same way, with :class:`RequestError`). The device goes
    into ``context.device``; a request whose context already holds a different
    ``device`` cannot be sent without changing its meaning, and is refused.
    """
    data = AccessRequest.from_mapping(request).to_dict()
    resource = {k: v for k, v in data["resource"].items() if k != "id" or v is not None}
    context = dict(data["context"])
    device = data["device"]
    if device:
        if "device" in context and context["device"] != device:
            raise RequestError(
                "context.device",
                "differs from device: an AuthZEN PDP receives the device as context.device",
            )
        context["device"] = device
    body: dict[str, Any] = {
        "subject": data["subject"],
        "action": data["action"],
        "resource": resource,
    }
    if context:
        body["context"] = context
    return body


def search_body(body: Mapping[str, Any], *, limit: int | None, token: str | None) -> dict[str, Any]:
    """A search request with its ``page`` (section 8.2.1); the caller's other keys kept."""
    out = dict(body)
    page: dict[str, Any] = dict(out.get("page") or {})
    if limit is not None:
        page["limit"] = limit
    if token is not None:
        page["token"] = token
    if page:
        out["page"] = page
    return out


def searched_type(kind: str, body: Mapping[str, Any]) -> str | None:
    """The type a subject or resource search asks for, when the request names one."""
    if kind == "action":
        return None
    entity = body.get(kind)
    found = entity.get("type") if isinstance(entity, Mapping) else None
    return found if isinstance(found, str) else None


def batch_body(
    items: Sequence[Mapping[str, Any] | AccessRequest],
    defaults: Mapping[str, Any],
    semantic: str,
) -> dict[str, Any]:
    """An evaluations request (section 7.1): AccessRequests are converted whole; a
    mapping is sent as the AuthZEN item it is (it may lean on the defaults)."""
    evaluations = [
        evaluation_body(item) if isinstance(item, AccessRequest) else dict(item) for item in items
    ]
    body: dict[str, Any] = {k: v for k, v in defaults.items() if v is not None}
    body["evaluations"] = evaluations
    if semantic != "execute_all":
        body["options"] = {"evaluations_semantic": semantic}
    return body


def check_semantic(value: str) -> str:
    """``options.evaluations_semantic``: one of the three section 7.1.2.1 names."""
    if value not in SEMANTICS:
        raise RequestError("semantic", f"must be one of {', '.join(SEMANTICS)}")
    return value


def search_key(kind: str) -> str:
    """The metadata key of a search kind's endpoint."""
    if kind not in SEARCH_KINDS:
        raise RequestError("kind", "must be subject, resource or action")
    return f"search_{kind}_endpoint"
