"""The web interface (Starlette, served by uvicorn): the only package that imports them."""

from __future__ import annotations

from monitor.web.app import Web, WebStores, create_app
from monitor.web.auth import ROLES, hash_password

__all__ = ["ROLES", "Web", "WebStores", "create_app", "hash_password", "serve"]


async def serve(web: Web, listen: str) -> None:
    """Serve until cancelled (SIGTERM/SIGINT in the caller)."""
    import uvicorn

    host, _, port = listen.rpartition(":")
    config = uvicorn.Config(create_app(web), host=host.strip("[]") or "127.0.0.1", port=int(port),
                            log_level="warning", access_log=False, lifespan="off",
                            proxy_headers=False)  # the peer is the peer: web_trusted_proxies decides whom to believe
    await uvicorn.Server(config).serve()
