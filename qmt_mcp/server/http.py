"""The HTTP transports (streamable HTTP and SSE) with bearer-token auth and Host/Origin checks.

- Every HTTP request must carry `Authorization: Bearer <token>` (the token from the environment
  variable `server.token_env` names), compared in constant time; otherwise 401.
- DNS-rebinding protection is always on: a Host outside the allowed hosts gets 421, an Origin
  outside the allowed origins 403 (the SDK's transport security, with our lists, also when bound to
  a non-loopback address, where the SDK would otherwise turn it off).
- Without a token the server starts only on loopback, and says so.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import ConfigError

log = logging.getLogger("qmt_mcp.server")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


class BearerAuth:
    """ASGI layer: 401 for any HTTP request without the right bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            supplied = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(supplied, self._expected):
                body = json.dumps({"error": "unauthorized", "message": "missing or wrong bearer token"}).encode()
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="qmt-mcp"'),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _both_forms(host: str) -> list[str]:
    """`name:*` matches only a Host header with a port; clients often send none for default ports."""
    if host.endswith(":*"):
        return [host, host[:-2]]
    if ":" in host.strip("[]") and not host.startswith("["):
        return [host]  # an explicit port, or a bare IPv6 literal: as written
    return [host, f"{host}:*"]


def security_settings(host: str, allowed_hosts: list[str], allowed_origins: list[str]) -> TransportSecuritySettings:
    hosts = [*LOOPBACK_HOSTS, *(form for h in allowed_hosts for form in _both_forms(h))]
    if host not in LOOPBACK and host not in ("0.0.0.0", "::"):  # noqa: S104 - listing, not binding
        hosts += _both_forms(host)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts,
        allowed_origins=[*LOOPBACK_ORIGINS, *allowed_origins],
    )


def http_app(
    server: Any, transport: str, host: str, token: str, allowed_hosts: list[str], allowed_origins: list[str],
) -> ASGIApp:
    if not token and host not in LOOPBACK:
        raise ConfigError(f"refusing to serve HTTP on non-loopback host {host!r} without a bearer token "
                          "(set the environment variable that server.token_env names)")
    security = security_settings(host, allowed_hosts, allowed_origins)
    if transport == "sse":
        sse = server.sse_app(transport_security=security, host=host)

        @asynccontextmanager
        async def hold_deps(_app: Any) -> AsyncIterator[None]:
            # The SDK enters the server's lifespan once per SSE connection; holding it here for the
            # app's life makes those entries share one worker connection and one event feed.
            async with server.settings.lifespan(server):
                yield

        sse.router.lifespan_context = hold_deps
        app: ASGIApp = sse
    else:
        app = server.streamable_http_app(transport_security=security, host=host)
    if not token:
        log.warning("serving HTTP on %s without a bearer token: any local process can connect", host)
        return app
    return BearerAuth(app, token)
