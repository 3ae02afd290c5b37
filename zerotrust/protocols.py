"""What the rest of the library asks of a PDP and of an identity source: small protocols,
so a web integration takes a remote PDP as well as a local one."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from zerotrust.decision import Decision
from zerotrust.request import AccessRequest

__all__ = ["DecisionPoint", "IdentitySource"]


class IdentitySource(Protocol):
    """Turns a request carrying credentials into one with a verified subject and device.

    ``zerotrust.identity.IdentityResolver`` is the shipped implementation. Either method
    raises :class:`IdentityError` when the credentials do not verify: such a request
    never reaches the policies.
    """

    def resolve(
        self, request: Mapping[str, Any], *, now: datetime.datetime | None = None
    ) -> dict[str, Any]: ...

    async def resolve_async(
        self, request: Mapping[str, Any], *, now: datetime.datetime | None = None
    ) -> dict[str, Any]: ...


@runtime_checkable
class DecisionPoint(Protocol):
    """What an enforcement point asks of a PDP: a :class:`PolicyDecisionPoint`, or a
    remote one through :class:`zerotrust.client.AuthZENClient`.

    The web integrations take any object with these methods as ``pdp=``. Either method
    raises rather than guess when no decision can be had (a remote PDP unreachable:
    ``PDPUnavailableError``); the integrations then refuse.
    """

    def evaluate(
        self,
        request: Mapping[str, Any] | AccessRequest,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> Decision: ...

    async def evaluate_async(
        self,
        request: Mapping[str, Any] | AccessRequest,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> Decision: ...
