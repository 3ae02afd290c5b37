"""FastAPI: authorization declared where the route is, as a dependency.

::

    zt = ZeroTrust(pdp, config=WebConfig(jwt=verifier))

    @app.get("/customers/{customer_id}")
    def read(
        customer_id: str,
        decision: Annotated[
            Decision, Depends(zt.requires("customer_record", "read", resource_id="customer_id"))
        ],
    ) -> dict[str, Any]: ...

    zt.install(app)

The route's own path parameters give ``resource.id`` (and, through ``properties=``,
``resource.properties``): FastAPI's router is the route table, so no second one is
written. The subject, device and HTTP context are read as the ASGI middleware reads
them, by the same :class:`~zerotrust.web._pep.Gate`. A refusal is raised as
:class:`Refusal` (an ``HTTPException``), answered by the handler :meth:`ZeroTrust.install`
registers with the same 401 / 403 problem+json as the middleware; the allowed
decision's obligations are applied to the route's JSON response by a small ASGI
middleware that ``install`` adds. Routes without a requirement are not guarded
(``ZeroTrust(..., require_all=True)`` refuses them). All but the dependency is
:class:`zerotrust.web.starlette.ZeroTrust`, which this one extends (its
:meth:`~zerotrust.web.starlette.ZeroTrust.guard` works on a FastAPI app's plain routes).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from fastapi import Header, HTTPException
from fastapi.params import Depends
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute

from zerotrust.decision import Decision
from zerotrust.engine import DecisionPoint
from zerotrust.web import starlette as base
from zerotrust.web.errors import WebConfigError
from zerotrust.web.http import WebConfig
from zerotrust.web.starlette import Part, Requirement

__all__ = ["Refusal", "Requirement", "ZeroTrust"]


class Refusal(base.Refusal, HTTPException):
    """A refusal raised by a :meth:`ZeroTrust.requires` dependency: FastAPI's
    ``HTTPException`` too, so a handler the app registers for that class sees it."""


class ZeroTrust(base.ZeroTrust):
    """The enforcement point for one FastAPI app: dependencies, handlers, obligations.

    ``debug`` puts the decision's reasons (the matched rules) into refusals; ``None``
    follows the app's own ``debug``. Never turn it on where clients are untrusted.
    ``require_all`` refuses (403 ``unmatched_route``, logged like any decision) every
    API route of the app that declares no requirement; FastAPI's own ``/docs`` and
    ``/openapi.json`` and mounted apps are not API routes and stay reachable.
    """

    refusal: ClassVar[type[base.Refusal]] = Refusal

    def __init__(
        self,
        pdp: DecisionPoint,
        *,
        config: WebConfig,
        debug: bool | None = None,
        require_all: bool = False,
        scheme_name: str = "bearer",
    ) -> None:
        super().__init__(pdp, config=config, debug=debug, require_all=require_all)
        # auto_error=False: the gate, not FastAPI, answers a missing token (and logs it).
        self._bearer = HTTPBearer(
            auto_error=False,
            scheme_name=scheme_name,
            description="A JWT from the identity provider: `Authorization: Bearer <token>`",
        )

    def requires(
        self,
        resource_type: str,
        action: str,
        *,
        resource_id: str | None = None,
        properties: Part = None,
        context: Part = None,
    ) -> Callable[..., Awaitable[Decision]]:
        """A dependency that decides the request and returns the (allow) decision.

        ``resource_id`` names the path parameter that is ``resource.id``; the other path
        parameters go to ``context.path_params`` (never to resource properties, which a
        URL must not choose). ``properties`` and ``context`` are mappings or functions
        called with the path parameters they name, and ``request`` if they take it: a
        plain function in the threadpool (a database query must not stall the event
        loop), an async one awaited. ``properties`` returning ``None`` means an unknown
        resource.
        """
        requirement = Requirement(resource_type, action, resource_id, properties, context)

        async def zerotrust_decision(connection: HTTPConnection, **_: Any) -> Decision:
            return await self._decide(connection, requirement)

        parameters = [
            inspect.Parameter(
                "connection", inspect.Parameter.KEYWORD_ONLY, annotation=HTTPConnection
            )
        ]
        if self.config.jwt is not None:
            parameters.append(
                inspect.Parameter(
                    "zerotrust_bearer",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=Depends(self._bearer),
                    annotation=Any,
                )
            )
        if self.config.device is not None:
            parameters.append(
                inspect.Parameter(
                    "zerotrust_device",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=Header(
                        None,
                        alias=self.config.device_header,
                        description="A device attestation (a JWT signed by the MDM)",
                    ),
                    annotation=str | None,
                )
            )
        # FastAPI reads the signature: the bearer scheme and device header show in OpenAPI.
        zerotrust_decision.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            parameters, return_annotation=Decision
        )
        zerotrust_decision.zerotrust_requirement = requirement  # type: ignore[attr-defined]
        return zerotrust_decision

    def route_requirements(self, route: BaseRoute) -> list[Requirement] | None:
        """An API route's dependencies; a plain route counts only if guarded (``/docs``
        and ``/openapi.json`` are FastAPI's own, never refused by ``require_all``)."""
        if isinstance(route, APIRoute | APIWebSocketRoute):
            _uncalled(route.dependant, route.path)
            return _requirements(route.dependant)
        return super().route_requirements(route) or None


def _requirements(dependant: Any) -> list[Requirement]:
    found: list[Requirement] = []
    requirement = getattr(dependant.call, "zerotrust_requirement", None)
    if isinstance(requirement, Requirement):
        found.append(requirement)
    for sub in dependant.dependencies:
        found.extend(_requirements(sub))
    return found


def _uncalled(dependant: Any, path: str) -> None:
    """``Depends(zt.requires)`` (not called) would ask clients for ``?resource_type=``."""
    for sub in dependant.dependencies:
        if getattr(sub.call, "__func__", None) in (ZeroTrust.requires, ZeroTrust.guard):
            name = sub.call.__func__.__name__
            raise WebConfigError(
                f"route {path}: Depends(zt.{name}) must be called: "
                f'Depends(zt.{name}("resource_type", "action", ...))'
            )
        _uncalled(sub, path)
