"""What ``zerotrust serve`` does, minus printing: build the config, then run uvicorn."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from zerotrust.engine import PolicyDecisionPoint
from zerotrust.server.app import create_app
from zerotrust.server.config import ServerConfig, ServerConfigError, load_config

__all__ = ["build_config", "is_loopback_host", "serve"]


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_config(
    config_file: str | Path | None,
    *,
    host: str,
    entities: str | None = None,
    insecure_local: bool = False,
) -> ServerConfig:
    """The config file refined by command-line flags; refuse a public insecure server."""
    entities_file = str(Path(entities)) if entities is not None else None
    if config_file is not None:
        config = load_config(
            config_file, entities_file=entities_file, insecure_local=insecure_local or None
        )
    else:
        config = ServerConfig(entities_file=entities_file, insecure_local=insecure_local)
    if config.insecure_local and not is_loopback_host(host):
        raise ServerConfigError(
            [f"--insecure-local serves loopback only; refusing to bind {host!r}"]
        )
    return config


def serve(pdp: PolicyDecisionPoint, config: ServerConfig, *, host: str, port: int) -> None:
    """Run the AuthZEN server until interrupted (blocks)."""
    import uvicorn

    app = create_app(pdp, config=config)
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=False,  # X-Forwarded-For must not turn a remote caller into loopback
        server_header=False,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
