"""``settings.ZEROTRUST`` read and checked: what the Django middleware, the
authentication backend and the Channels guard are built from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from zerotrust.engine import DecisionPoint
from zerotrust.web.errors import WebConfigError
from zerotrust.web.http import WebConfig

__all__ = ["DjangoConfigError", "check_declaration", "load_settings", "permissions_of"]

_BACKEND = "zerotrust.web.django_backend.ZeroTrustBackend"


class DjangoConfigError(WebConfigError, ImproperlyConfigured):  # type: ignore[misc]
    """``settings.ZEROTRUST`` or a declaration is wrong; the message names the key.

    Also Django's ``ImproperlyConfigured``, so Django reports it as configuration.
    """


def check_declaration(resource_type: Any, action: Any, resource_id: Any) -> None:
    """What ``requires`` (a view's, a consumer's) names: two strings, and a keyword
    argument of the route or nothing."""
    for name, value in (("resource_type", resource_type), ("action", action)):
        if not isinstance(value, str) or not value:
            raise DjangoConfigError(f"requires: {name} must be a non-empty string")
    if resource_id is not None and (not isinstance(resource_id, str) or not resource_id):
        raise DjangoConfigError("requires: resource_id names a URL keyword argument")


def _load(options: Mapping[str, Any], key: str) -> Any:
    """The value of ``key``: as given, or imported from a dotted path (called if callable)."""
    value = options.get(key)
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise DjangoConfigError(f"ZEROTRUST[{key!r}]: cannot import {value!r}") from exc
        if callable(value) and not isinstance(value, type):
            value = value()
    return value


def load_settings() -> tuple[DecisionPoint, WebConfig, bool | None]:
    options = getattr(settings, "ZEROTRUST", None)
    if not isinstance(options, Mapping):
        raise DjangoConfigError("settings.ZEROTRUST must be a dict with 'PDP' and 'CONFIG'")
    unknown = set(options) - {"PDP", "CONFIG", "DEBUG", "PERMISSIONS"}
    if unknown:
        raise DjangoConfigError(f"settings.ZEROTRUST: unknown keys {sorted(unknown)}")
    pdp = _load(options, "PDP")
    if not all(callable(getattr(pdp, m, None)) for m in ("evaluate", "evaluate_async")):
        raise DjangoConfigError(
            "ZEROTRUST['PDP'] must be a PolicyDecisionPoint, a remote one "
            "(zerotrust.client.AuthZENClient), or a dotted path to one "
            "(or to a function returning one)"
        )
    config = _load(options, "CONFIG")
    if isinstance(config, Mapping):
        try:
            config = WebConfig(**config)
        except (TypeError, ValueError) as exc:
            raise DjangoConfigError(f"ZEROTRUST['CONFIG']: {exc}") from exc
    if not isinstance(config, WebConfig):
        raise DjangoConfigError(
            "ZEROTRUST['CONFIG'] must be a WebConfig, a dict of its fields or a dotted path"
        )
    permissions_of(options)
    backends = list(getattr(settings, "AUTHENTICATION_BACKENDS", ()))
    if _BACKEND in backends and backends[0] != _BACKEND:
        raise DjangoConfigError(
            f"AUTHENTICATION_BACKENDS: list {_BACKEND!r} first: Django grants a permission "
            "as soon as any backend before it does"
        )
    debug = options.get("DEBUG")
    if debug is not None and not isinstance(debug, bool):
        raise DjangoConfigError("ZEROTRUST['DEBUG'] must be True, False or unset")
    return pdp, config, debug


def permissions_of(options: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``ZEROTRUST["PERMISSIONS"]``: ``{"app_label.codename": (resource_type, action)}``."""
    found = options.get("PERMISSIONS") or {}
    if not isinstance(found, Mapping):
        raise DjangoConfigError("ZEROTRUST['PERMISSIONS'] maps 'app.codename' to (type, action)")
    for perm, target in found.items():
        if not (isinstance(perm, str) and perm.count(".") == 1 and isinstance(target, tuple)):
            raise DjangoConfigError(f"ZEROTRUST['PERMISSIONS']: {perm!r}: not 'app.codename'")
        if len(target) != 2 or not all(isinstance(x, str) and x for x in target):
            raise DjangoConfigError(f"ZEROTRUST['PERMISSIONS'][{perm!r}]: not (type, action)")
    return dict(found)
