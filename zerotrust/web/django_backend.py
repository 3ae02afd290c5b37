"""Django's permissions asked of the PDP: an authentication backend whose ``has_perm``
decides the permissions ``settings.ZEROTRUST["PERMISSIONS"]`` names.

::

    AUTHENTICATION_BACKENDS = [
        "zerotrust.web.django_backend.ZeroTrustBackend",   # first: see below
        "django.contrib.auth.backends.ModelBackend",
    ]
    ZEROTRUST = {..., "PERMISSIONS": {"customers.view_customer": ("customer_record", "read")}}

    request.user.has_perm("customers.view_customer", customer)   # asks the PDP

The subject is the one the request in progress authenticates (its bearer token, verified
as the middleware verifies it), never a user the code names: outside a request handled
by :class:`~zerotrust.web.django.ZeroTrustMiddleware`, or for another user than
``request.user``, a governed permission is refused. Django grants a permission as soon as
any backend does, so a refusal raises ``PermissionDenied``, which stops Django from asking
the backends after this one; the middleware then answers the view's ``PermissionDenied``
(or 403) with the refusal itself: the 401 step-up challenge, the bearer challenge, or the
403 problem+json.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied

from zerotrust.web._pep import Reply
from zerotrust.web.django import (
    REFUSED,
    REQUEST_IN_PROGRESS,
    DjangoConfigError,
    decide,
    gate_of,
    route_of,
)
from zerotrust.web.django_config import permissions_of
from zerotrust.web.http import Target

__all__ = ["PermissionRefused", "ZeroTrustBackend", "object_id", "object_properties"]

_log = logging.getLogger("zerotrust.web")


class PermissionRefused(PermissionDenied):  # type: ignore[misc]
    """The PDP refused a governed permission; ``reply`` is how the middleware answers."""

    def __init__(self, perm: str, reply: Reply | None) -> None:
        code = reply.code if reply is not None else "no_request"
        super().__init__(f"{perm}: {code}")
        self.reply = reply


_MISSING = object()


def object_properties(mapping: Any, obj: Any) -> dict[str, Any]:
    """``resource.properties`` of ``obj``: ``mapping`` (resource property -> field or key),
    else the model's own ``zerotrust_properties``; fields that are None are left out."""
    if mapping is None:
        mapping = getattr(type(obj), "zerotrust_properties", None) or {}
    if not isinstance(mapping, Mapping):
        raise DjangoConfigError("zerotrust_properties maps resource properties to object fields")
    found: dict[str, Any] = {}
    for prop, field in mapping.items():
        if isinstance(obj, Mapping):
            value = obj.get(field)
        else:
            # A field the object does not have (a typo, or a property that raised
            # AttributeError) is a mistake, not an unknown value: a policy guarded by
            # has() would read its absence as "nothing to refuse".
            value = getattr(obj, field, _MISSING)
            if value is _MISSING:
                raise DjangoConfigError(
                    f"zerotrust_properties[{prop!r}]: {type(obj).__name__} has no "
                    f"attribute {field!r} (or reading it raised AttributeError)"
                )
        if value is not None:
            found[prop] = value
    return found


def object_id(obj: Any) -> Any:
    """``resource.id`` of an object: its primary key, or a mapping's ``"id"``."""
    return obj.get("id") if isinstance(obj, Mapping) else getattr(obj, "pk", None)


class ZeroTrustBackend:
    """Authenticates nobody; authorizes the permissions it governs through the PDP."""

    def authenticate(self, request: Any, **credentials: Any) -> None:
        """Logs nobody in (and has no ``get_user``: a session never names this backend);
        the subject is the request's bearer token, verified per request."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        """True on an allow; False for a permission zerotrust does not govern (the other
        backends decide it); raises :class:`PermissionRefused` for any other answer."""
        options = getattr(settings, "ZEROTRUST", None) or {}
        governed = permissions_of(options).get(perm)
        if governed is None:
            return False
        request = REQUEST_IN_PROGRESS.get()
        if request is None:
            _log.warning("has_perm(%r) refused: no request under ZeroTrustMiddleware", perm)
            raise PermissionRefused(perm, None)
        if not _is_request_user(request, user_obj):
            _log.warning("has_perm(%r) refused: asked for a user other than request.user", perm)
            raise PermissionRefused(perm, None)
        kind, action = governed
        rid = None if obj is None else object_id(obj)
        props = {} if obj is None else object_properties(None, obj)
        target = Target(
            kind, action, None if rid is None else str(rid), props, {}, route_of(request)
        )
        reply = decide(gate_of(request), request, target)
        if reply is None:
            return True
        setattr(request, REFUSED, reply)
        raise PermissionRefused(perm, reply)

    async def ahas_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        """``has_perm`` for ``user.ahas_perm``: Django's async check skips a backend
        without this method, and would let ModelBackend grant what the PDP refuses."""
        answer: bool = await sync_to_async(self.has_perm)(user_obj, perm, obj)
        return answer


def _is_request_user(request: Any, user_obj: Any) -> bool:
    """The subject decided on is the request's: ``user_obj`` must be ``request.user``
    (or there is no Django user on the request, and ``user_obj`` is anonymous)."""
    user = getattr(request, "user", None)
    if user is None:
        return not getattr(user_obj, "is_authenticated", True)
    return bool(user == user_obj)
