"""Django REST framework: a permission class that asks the PDP, under the Django middleware.

::

    class CustomerDetail(RetrieveAPIView):
        permission_classes = [ZeroTrustPermission]
        zerotrust_resource_type = "customer_record"
        zerotrust_actions = {"GET": "read", "PATCH": "update"}
        zerotrust_resource_id_kwarg = "pk"
        zerotrust_properties = {"owner_dept": "department", "sensitivity": "sensitivity"}

A URL with the object's id defers the decision to ``has_object_permission``, where the
object's fields (through ``zerotrust_properties``: resource property -> object field) are
what the policies see; a view that never checks the object is withheld, not answered
undecided. A refusal is raised and answered by
:class:`~zerotrust.web.django.ZeroTrustMiddleware` exactly as the WSGI middleware answers;
obligations apply to the rendered JSON as for any declared Django view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.filters import BaseFilterBackend
from rest_framework.permissions import BasePermission

from zerotrust.web._wsgi import http_request
from zerotrust.web.django import (
    OBJECT_PENDING,
    DjangoConfigError,
    Refused,
    decide,
    gate_of,
    route_of,
)
from zerotrust.web.django_backend import object_id, object_properties
from zerotrust.web.http import Target

__all__ = ["ZeroTrustFilter", "ZeroTrustPermission"]

_LIST = "list"  # OBJECT_PENDING's value when ZeroTrustFilter owes the decisions
#: On the request once has_permission deferred to the objects (True: one object's
#: check; _LIST: the filter's): from then on every object checked is decided.
_DEFERRED = "_zerotrust_deferred"


def _django(request: Any) -> HttpRequest:
    return getattr(request, "_request", request)


def _action(view: Any, method: str) -> str:
    actions = getattr(view, "zerotrust_actions", None)
    if isinstance(actions, Mapping):
        # A viewset action's own entry ("export" of an @action) is more specific than
        # its method's ("GET"): the method's must not decide what the action serves.
        found = actions.get(getattr(view, "action", None) or "") or actions.get(method)
        if not found and method == "HEAD" and not _own_head(view):
            found = actions.get("GET")  # Django serves HEAD with the GET handler
    else:
        found = getattr(view, "zerotrust_action", None)
    if (not isinstance(found, str) or not found) and not _serves(view, method):
        # DRF answers a method the view has no handler for with 405 after the
        # permissions: a client's DELETE is not the developer's missing declaration.
        raise MethodNotAllowed(method)
    if not isinstance(found, str) or not found:
        raise DjangoConfigError(
            f"ZeroTrustPermission: {type(view).__name__} declares no zerotrust_action "
            f"(or zerotrust_actions entry) for {method}"
        )
    return found


def _probe(request: Any, django_request: HttpRequest) -> bool:
    """Whether DRF asks for another method than the request's: a clone of it made by the
    browsable API (may it show a PUT form?) or the OPTIONS metadata. Nothing is served
    for it, so nothing is decided: no (a decision would be logged as the real method's,
    and a deferred object check would be owed again after it was made)."""
    return bool(getattr(request, "method", None) != django_request.method)


def _serves(view: Any, method: str) -> bool:
    """Whether a handler of the view's own (or a viewset action) serves ``method``; DRF's
    ``options`` (metadata, no record) and its 405 answer are not."""
    handler = getattr(view, method.lower(), None)
    if method.lower() not in getattr(view, "http_method_names", ()) or handler is None:
        return False
    # Imported here: settings naming this module in DEFAULT_PERMISSION_CLASSES are read
    # while rest_framework.views itself is being imported.
    from rest_framework.views import APIView

    function = getattr(handler, "__func__", handler)
    return function not in (APIView.options, APIView.http_method_not_allowed)


def _own_head(view: Any) -> bool:
    """Whether the view class defines ``head`` itself (else View.setup aliases ``get``)."""
    return hasattr(type(view), "head")


def _target(
    view: Any, request: HttpRequest, resource_id: str | None, props: Mapping[str, Any]
) -> Target:
    kind = getattr(view, "zerotrust_resource_type", None)
    if not isinstance(kind, str) or not kind:
        raise DjangoConfigError(
            f"ZeroTrustPermission: {type(view).__name__} declares no zerotrust_resource_type"
        )
    kwargs: Mapping[str, Any] = getattr(view, "kwargs", None) or {}
    id_kwarg = _id_kwarg(view)
    params = {k: str(v) for k, v in kwargs.items() if k != id_kwarg}
    return Target(
        kind,
        _action(view, request.method or "GET"),
        resource_id,
        dict(props),
        {"path_params": params} if params else {},
        route_of(request),
    )


def _id_kwarg(view: Any) -> str:
    found = getattr(view, "zerotrust_resource_id_kwarg", None)
    if found is None:
        found = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")
    if not isinstance(found, str) or not found:
        raise DjangoConfigError("ZeroTrustPermission: zerotrust_resource_id_kwarg names a kwarg")
    return found


def _properties(view: Any, obj: Any) -> dict[str, Any]:
    """The view's ``zerotrust_properties``, else the model's: the backend's mapping too."""
    return object_properties(getattr(view, "zerotrust_properties", None), obj)


class ZeroTrustPermission(BasePermission):  # type: ignore[misc]
    """Ask the PDP in DRF's own places: ``has_permission`` for the request, and
    ``has_object_permission`` (with the object's fields) when the URL names an object.

    Never returns False for the request: a refusal is raised, so DRF's 403 never stands
    in for the step-up or bearer challenge. DRF's probes with a clone of the request for
    another method (the browsable API's forms, OPTIONS metadata) get False, undecided.
    Needs the Django middleware (``MIDDLEWARE``).
    """

    def has_permission(self, request: Any, view: Any) -> bool:
        django_request = _django(request)
        if _probe(request, django_request):
            return False
        gate = gate_of(django_request)
        kwargs: Mapping[str, Any] = getattr(view, "kwargs", None) or {}
        method = django_request.method or "GET"
        if _id_kwarg(view) in kwargs and _checks_object(view, method):
            # The object's fields are not known yet: decide in has_object_permission,
            # and withhold the response if that is never called.
            _action(view, method)  # a missing action fails now, before anything is owed
            setattr(django_request, OBJECT_PENDING, True)
            setattr(django_request, _DEFERRED, True)
            return True
        rid = kwargs.get(_id_kwarg(view))
        if rid is None and method in _SAFE and _filters(view):
            # A list: ZeroTrustFilter decides each object. A caller who is nobody is
            # refused now, not answered with an empty list.
            if gate.identify(http_request(django_request.META)[0]).error is not None:
                reply = decide(gate, django_request, _target(view, django_request, None, {}))
                if reply is not None:  # always, for an identity failure
                    raise Refused(reply)
            _action(view, method)  # a missing action fails now, before anything is owed
            setattr(django_request, OBJECT_PENDING, _LIST)
            setattr(django_request, _DEFERRED, _LIST)
            return True
        # Anything else is decided now, before the view runs: a list, and a write the
        # view is not known to check the object for (its side effect would happen
        # before a withheld response could refuse it), from the URL's id alone and the
        # view's get_zerotrust_properties().
        props = _request_properties(view)
        target = _target(view, django_request, None if rid is None else str(rid), props)
        reply = decide(gate, django_request, target)
        if reply is not None:
            raise Refused(reply)
        return True

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        if _probe(request, _django(request)):
            return False
        django_request = _django(request)
        if not getattr(django_request, _DEFERRED, False):
            return True  # decided in has_permission, before the view ran
        # Deferred to the objects: every object checked is decided, not only the first
        # (a view that checks its record, then a related one; a list action's get_object).
        pending = getattr(django_request, OBJECT_PENDING, None)
        gate = gate_of(django_request)
        kwargs: Mapping[str, Any] = getattr(view, "kwargs", None) or {}
        rid = kwargs.get(_id_kwarg(view)) if pending is True else None
        if rid is None:
            rid = object_id(obj)
        target = _target(
            view, django_request, None if rid is None else str(rid), _properties(view, obj)
        )
        reply = decide(gate, django_request, target)
        if pending is True:
            delattr(django_request, OBJECT_PENDING)  # decided: a refusal answers for itself
        if reply is not None:
            raise Refused(reply)
        return True

    def object_decision_owed(self, request: Any) -> bool:
        """Whether ``has_permission`` deferred to an object check that never ran."""
        return bool(getattr(_django(request), OBJECT_PENDING, False))


class ZeroTrustFilter(BaseFilterBackend):  # type: ignore[misc]
    """``filter_backends`` of a list: each object is decided (on its fields, as
    ``has_object_permission`` decides one) and the refused ones are dropped.

    DRF never calls ``has_object_permission`` for the items of a list; this is where a
    list's objects are decided. Every decision is logged. The obligations of the allows
    apply to the whole response, once each. A detail view's queryset passes unchanged
    (its object is decided by the permission).
    """

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        django_request = _django(request)
        if getattr(django_request, _DEFERRED, None) != _LIST:
            return queryset  # a detail's queryset: its object is decided by the permission
        # Every call is decided (a list action may filter twice: a count, then the rows).
        gate = gate_of(django_request)
        allowed = []
        for obj in queryset:
            rid = object_id(obj)
            props = _properties(view, obj)
            target = _target(view, django_request, None if rid is None else str(rid), props)
            reply = decide(gate, django_request, target)
            if reply is None:
                allowed.append(obj)
            elif reply.code == "pdp_unavailable":
                # No decision is not a refusal of this object: a list silently short of
                # what the PDP could not decide would pass for the whole answer. 503.
                if hasattr(django_request, OBJECT_PENDING):
                    delattr(django_request, OBJECT_PENDING)
                raise Refused(reply)
        if hasattr(django_request, OBJECT_PENDING):
            delattr(django_request, OBJECT_PENDING)
        if isinstance(queryset, QuerySet):
            return queryset.filter(pk__in=[obj.pk for obj in allowed])
        return allowed


def _filters(view: Any) -> bool:
    return any(
        isinstance(f, type) and issubclass(f, ZeroTrustFilter)
        for f in getattr(view, "filter_backends", None) or ()
    )


def _request_properties(view: Any) -> dict[str, Any]:
    """Resource properties of a decision with no object: ``view.get_zerotrust_properties()``
    (a list's department, a new record's fields), or none."""
    hook = getattr(view, "get_zerotrust_properties", None)
    found = hook() if callable(hook) else None
    if found is not None and not isinstance(found, Mapping):
        raise DjangoConfigError("ZeroTrustPermission: get_zerotrust_properties() gave no mapping")
    return dict(found or {})


#: The writes DRF's generic views make through a mixin method that loads the object
#: (``get_object()``, so ``has_object_permission``) before it changes anything.
_OBJECT_WRITES = {"PUT": "update", "PATCH": "partial_update", "DELETE": "destroy"}
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _checks_object(view: Any, method: str) -> bool:
    """Whether the view is known to check the object before acting on ``method``: a read
    (its response is withheld if the check never comes), a write by DRF's own generic
    handler and mixin, or a view that says so (``zerotrust_checks_object = True``)."""
    if method in _SAFE or getattr(view, "zerotrust_checks_object", False) is True:
        return True
    name = _OBJECT_WRITES.get(method)
    if name is None:
        return False
    handler = getattr(view, method.lower(), None)
    action = getattr(view, name, None)
    # The mixin checks the object through get_object(); an app's own get_object (a
    # custom lookup) may never call check_object_permissions, and the write would be
    # done before the withheld answer: then it is decided before the view runs.
    loads = getattr(view, "get_object", None)
    checks = getattr(view, "check_object_permissions", None)
    return all(_from_drf(m) for m in (handler, action, loads, checks))


def _from_drf(method: Any) -> bool:
    function = getattr(method, "__func__", method)
    return str(getattr(function, "__module__", "")).startswith("rest_framework.")
