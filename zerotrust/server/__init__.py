"""The OpenID AuthZEN Authorization API 1.0 over HTTP (``zerotrust serve``).

An adapter: it needs the ``server`` extra (Starlette, uvicorn) and is never imported
by ``import zerotrust``.
"""

from __future__ import annotations

from zerotrust.server.app import create_app
from zerotrust.server.config import ServerConfig, ServerConfigError, load_config
from zerotrust.server.entities import Entities, Entity, load_entities

__all__ = [
    "Entities",
    "Entity",
    "ServerConfig",
    "ServerConfigError",
    "create_app",
    "load_config",
    "load_entities",
]
