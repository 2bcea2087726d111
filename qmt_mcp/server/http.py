"""The HTTP transports (streamable HTTP and SSE) with bearer-token auth and Host/Origin checks.

- Every HTTP request must carry `Authorization: Bearer <token>` (the token from the environment
  variable `server.token_env` names), compared in constant time; otherwise 401.
- DNS-rebinding protection is always on: a Host outside the allowed hosts gets 421, an Origin
  outside the allowed origins 403, also when bound to a non-loopback address, where the SDK would
  otherwise turn it off. `HostOriginCheck` decides, in front of the SDK: host names and schemes are
  case-insensitive (`Host: LOCALHOST` is localhost), and a refusal is one log line, where the SDK's
  SSE transport would log a traceback for each. The SDK's own check still runs behind it, on the
  normalised headers, with the same lists.
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


def _matches(value: str, allowed: list[str]) -> bool:
    """The SDK's rule (transport_security.py): exact, or `name:*` for that name with any port."""
    return value in allowed or any(a.endswith(":*") and value.startswith(a[:-1]) for a in allowed)


class HostOriginCheck:
    """ASGI layer: 421 for a Host, 403 for an Origin outside the lists, compared without case; passes
    the request on with both headers lower-cased, so the SDK's check behind it agrees."""

    def __init__(self, app: ASGIApp, settings: TransportSecuritySettings) -> None:
        self.app = app
        self._hosts = [h.lower() for h in settings.allowed_hosts]
        self._origins = [o.lower() for o in settings.allowed_origins]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v.lower() if k in (b"host", b"origin") else v) for k, v in scope.get("headers") or []]
        given = dict(headers)
        host = given.get(b"host", b"").decode("latin-1")
        origin = given.get(b"origin", b"").decode("latin-1")
        if not host or not _matches(host, self._hosts):
            await _refuse(send, 421, "invalid_host", f"Host {host!r} is not one this server answers to")
            return
        if origin and not _matches(origin, self._origins):
            await _refuse(send, 403, "invalid_origin", f"Origin {origin!r} is not allowed")
            return
        await self.app({**scope, "headers": headers}, receive, send)


async def _refuse(send: Send, status: int, error: str, message: str) -> None:
    log.warning("refused an HTTP request (%d): %s", status, message)
    body = json.dumps({"error": error, "message": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


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
    # Lower-cased like the headers HostOriginCheck passes on: names and schemes carry no case.
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=[h.lower() for h in hosts],
        allowed_origins=[o.lower() for o in [*LOOPBACK_ORIGINS, *allowed_origins]],
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
    app = HostOriginCheck(app, security)
    if not token:
        log.warning("serving HTTP on %s without a bearer token: any local process can connect", host)
        return app
    return BearerAuth(app, token)
