"""The OpenID AuthZEN Authorization API 1.0 over HTTP (``zerotrust serve``).

An adapter: it needs the ``server`` extra (Starlette, uvicorn) and is never imported
by ``import zerotrust``. ``zerotrust.server.identity.build_identity`` turns an
:class:`IdentityConfig` into the PDP's ``identity=``; it is not imported here, so
that importing the server does not import the verifiers.
"""

from __future__ import annotations

from zerotrust.server.app import create_app
from zerotrust.server.config import (
    DeviceConfig,
    IdentityConfig,
    ServerConfig,
    ServerConfigError,
)
from zerotrust.server.entities import Entities, Entity, load_entities
from zerotrust.server.settings import load_config

__all__ = [
    "DeviceConfig",
    "Entities",
    "Entity",
    "IdentityConfig",
    "ServerConfig",
    "ServerConfigError",
    "create_app",
    "load_config",
    "load_entities",
]
