"""The worker's HTTP API: POST /v1/<call> with a JSON object, bearer token on every request.

Two bearers: the worker token (per spawn, what the MCP server holds) for the ordinary calls and the
event stream, and the operator key (operator.key, held by the person's CLI and console) for the calls
the catalogue marks `operator`. Neither opens the other's calls: the server can never flip a kill
switch, and a leaked operator key does not place orders.

Every answer is the contract envelope: {"ok": true, ...payload} or {"ok": false, "error": {...}}.
Domain errors are 200 with ok=false (they are answers); only transport problems use 4xx/5xx.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pydantic_core
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..calls import OPERATOR, SERVER_CHANNEL, STATE_CHANGING, checked_args
from ..domain.errors import ErrorCode, QmtError
from . import crashpoints

log = logging.getLogger("qmt_mcp.worker")
# A call's handler takes the instance of its call's arguments model (calls.py), already checked, or
# for the worker's own calls without a model the request's JSON object; it answers the payload. Any,
# because each takes its own model: tests/test_catalogue.py checks each handler's annotation instead.
Handler = Callable[[Any], Awaitable[dict[str, Any]]]
MAX_BODY = 64 * 1024


class _Json(JSONResponse):
    """A JSON answer written by pydantic's compiled serializer: every call's answer crosses here, and
    json.dumps takes about four times as long (a quarter of a millisecond for 60 bars)."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)


def error_body(exc: QmtError) -> dict[str, Any]:
    return {"ok": False, "error": exc.to_dict()}


AUDITED = STATE_CHANGING  # every call that changes broker or risk state, and its outcome
SECRET_ARGS = {"confirm_token", "person_proof"}  # bearer proofs: the audit records that they came, not them


Job = Callable[[], Awaitable[Any]]


def build_app(
    handlers: dict[str, Handler], token: str, *, startup: Job | None = None,
    periodic: Sequence[tuple[Job, float]] = (), audit: Callable[[dict[str, Any]], None] | None = None,
    stream: Callable[[int], AsyncIterator[bytes]] | None = None, operator_key: str = "",
    quote_stream: Callable[[str], AsyncIterator[bytes]] | None = None,
) -> ASGIApp:
    """`startup` runs before the first request is served; each periodic job runs every so many seconds;
    `stream(after_seq)` serves GET /v1/events. Operator calls need `operator_key` (empty: refused)."""

    def refusal(supplied: bytes, operator: bool = False) -> tuple[dict[str, Any], int] | None:
        """The 401 answer for an Authorization header that does not carry the call's secret."""
        secret = operator_key if operator else token
        # Constant-time comparison: the token is the only thing between a client and the account.
        if not secret or not hmac.compare_digest(supplied, f"Bearer {secret}".encode()):
            what = "the operator key" if operator else "the worker token"
            exc = QmtError(f"missing or wrong bearer token: this call needs {what}", code=ErrorCode.UNAUTHORIZED)
            return error_body(exc), 401
        return None

    def refused(request: Request) -> Response | None:
        denied = refusal(request.headers.get("authorization", "").encode())
        return None if denied is None else _Json(denied[0], status_code=denied[1])

    async def events(request: Request) -> Response:
        if (denied := refused(request)) is not None:
            return denied
        raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        # isdigit() alone takes "²" and other digits int() refuses; "latest" starts at the journal's end.
        if not (raw == "latest" or (raw.isascii() and raw.isdigit() and len(raw) <= 19)):
            exc = QmtError("Last-Event-ID / after must be a seq number or 'latest'", code=ErrorCode.INVALID_ARGUMENT)
            return _Json(error_body(exc), status_code=400)
        if stream is None:
            return _Json(error_body(QmtError("no event stream here")), status_code=404)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        after = -1 if raw == "latest" else int(raw)
        return StreamingResponse(stream(after), media_type="text/event-stream", headers=headers)

    async def quotes(request: Request) -> Response:
        # The quotes a server follows (worker/quotes.py); `watcher` names its stream in watch_quotes.
        if (denied := refused(request)) is not None:
            return denied
        watcher = request.query_params.get("watcher", "")
        if quote_stream is None or not (0 < len(watcher) <= 40 and watcher.isascii()
                                        and watcher.replace("-", "").replace("_", "").isalnum()):
            exc = QmtError("GET /v1/quotes?watcher=<1-40 letters, digits, - _>", code=ErrorCode.INVALID_ARGUMENT)
            return JSONResponse(error_body(exc), status_code=400 if quote_stream is not None else 404)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(quote_stream(watcher), media_type="text/event-stream", headers=headers)

    async def call(name: str, authorization: bytes, read_body: Callable[[], Awaitable[bytes | None]]) -> _Answer:
        """POST /v1/<name>: the answer, its status and whether the connection must close. Served by
        `fast_path` below; Starlette's route for the path stays, so that another method on it is
        answered 405 (and it answers a POST as fast_path does, were one ever routed to it)."""
        denied = refusal(authorization, operator=name in OPERATOR)
        # The server's token on the one operator call it may make: let in, the channel checked below.
        by_server = denied is not None and name in SERVER_CHANNEL and refusal(authorization) is None
        if denied is not None and not by_server:
            return _Answer(*denied)
        handler = handlers.get(name)
        if handler is None:
            exc = QmtError(f"no worker call named {name!r}", code=ErrorCode.INVALID_ARGUMENT)
            return _Answer(error_body(exc), 404)
        body = await read_body()
        if body is None:
            exc = QmtError(f"request body too large (at most {MAX_BODY} bytes)", code=ErrorCode.INVALID_ARGUMENT)
            # The rest of the body is never read, so this connection cannot carry another request.
            return _Answer(error_body(exc), 413, close=True)
        try:
            args = json.loads(body) if body else {}
        except (ValueError, UnicodeDecodeError):
            args = None
        if not isinstance(args, dict):
            exc = QmtError("the body must be a JSON object", code=ErrorCode.INVALID_ARGUMENT)
            return _Answer(error_body(exc), 400)
        status = 200
        try:
            if name in SERVER_CHANNEL and by_server != (args.get("channel") == SERVER_CHANNEL[name]):
                # Who decided follows the credential: the server's token only as its channel, and the
                # operator key never as that one. An answer (200), not a 401: the server reads a 401
                # from its spawned worker as "the worker was replaced".
                raise QmtError(f"{name} through channel {args.get('channel', 'cli')!r} needs "
                               f"{'the operator key' if by_server else 'the MCP server (the app channel)'}",
                               code=ErrorCode.UNAUTHORIZED,
                               details={"channel": args.get("channel", "cli"),
                                        "needs": "operator_key" if by_server else "server_token"})
            # Checked against the call's model in the catalogue before any handler sees it; the
            # handler gets the model instance.
            body_out: dict[str, Any] = {"ok": True, **await handler(checked_args(name, args))}
        except QmtError as exc:
            log.info("call %s refused: %s %s", name, exc.code.value, exc.message)
            body_out = error_body(exc)
        except Exception:
            log.exception("call %s failed", name)
            crash = QmtError("the worker hit an unexpected error", code=ErrorCode.INTERNAL, state_changed="unknown")
            body_out, status = error_body(crash), 500
        if audit is not None and name in AUDITED:
            entry: dict[str, Any] = {
                "call": name, "args": {k: v for k, v in args.items() if k not in SECRET_ARGS},
                # An operator call's answer is small (the account's new controls): kept whole.
                "outcome": body_out if not body_out["ok"] or name in OPERATOR
                else {"ok": True, "order": body_out.get("order"),
                      # a conditional order's call answers the condition, which the trail keeps too
                      **({"condition": body_out["condition"]} if "condition" in body_out else {})}}
            if name in OPERATOR:
                # Who: a person, through the channel the call names (checked by its model; cli if omitted).
                # (The app channel: the MCP server's token, for a person at the host's order ticket.)
                entry["by"] = {"operator": not by_server, "channel": args.get("channel", "cli")}
            try:
                audit(entry)
            except OSError:
                # The answer stands (the journal has the order); a full disk must not turn it into a 500.
                log.exception("audit entry for %s not written", name)
        crashpoints.reached("api.answer")
        return _Answer(body_out, status)

    async def routed_call(request: Request) -> Response:
        answer = await call(request.path_params["name"], request.headers.get("authorization", "").encode(),
                            lambda: _receive_body(request.headers.get("content-length", "").encode(),
                                                  request.receive))
        return _Json(answer.body, status_code=answer.status, headers={"Connection": "close"} if answer.close else None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if startup is not None:
            await startup()
        async with anyio.create_task_group() as tg:
            for job, interval in periodic:
                tg.start_soon(_every, job, interval)
            yield
            tg.cancel_scope.cancel()

    async def not_here(request: Request, exc: Exception) -> Response:
        # Every answer is an envelope, even for a path or method the API does not have.
        status = getattr(exc, "status_code", 404)
        what = "no such path" if status == 404 else f"{request.method} is not allowed here"
        err = QmtError(f"{what}: {request.url.path}", code=ErrorCode.INVALID_ARGUMENT,
                       hint="POST /v1/<call> with a JSON object, or GET /v1/events")
        return _Json(error_body(err), status_code=status)

    routes = [Route("/v1/events", events, methods=["GET"]), Route("/v1/quotes", quotes, methods=["GET"]),
              Route("/v1/{name}", routed_call, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_here, 405: not_here})
    app.router.redirect_slashes = False  # a redirect is not an answer a client of this API can use

    async def fast_path(scope: Scope, receive: Receive, send: Send) -> None:
        # Every tool call crosses here: POST /v1/<call> is answered in plain ASGI, without Starlette's
        # middleware, router and request objects (about 40 µs of a worker call of 0.4 ms); the event
        # streams, the lifespan and every other path or method go through Starlette as routed above.
        name = _call_name(scope)
        if name is None:
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        answer = await call(name, headers.get(b"authorization", b""),
                            lambda: _receive_body(headers.get(b"content-length", b""), receive))
        data = pydantic_core.to_json(answer.body)
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        if answer.close:
            head.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": answer.status, "headers": head})
        await send({"type": "http.response.body", "body": data})

    return fast_path


@dataclass(frozen=True)
class _Answer:
    body: dict[str, Any]
    status: int = 200
    close: bool = False   # the connection cannot carry another request (a body left unread)


def _call_name(scope: Scope) -> str | None:
    """The call a request names, if it is POST /v1/<call> (what the route "/v1/{name}" matches)."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    name = path[4:]
    return name if path.startswith("/v1/") and name and "/" not in name else None


async def _receive_body(declared: bytes, receive: Receive) -> bytes | None:
    """The body, or None when it is larger than MAX_BODY: a declared Content-Length says so before any of
    it is read, and a body without one (chunked) is read only until it passes the limit, so a client
    cannot make the worker wait for, or hold, more than MAX_BODY + one chunk."""
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None   # (a malformed Content-Length never gets here: the HTTP server answers 400 itself)
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body)   # the client went away: the handler's answer has nowhere to go
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body", False):
            return bytes(body)


async def _every(job: Job, interval: float) -> None:
    while True:
        await anyio.sleep(interval)
        try:
            await job()
        except Exception:
            log.exception("background job %s failed", getattr(job, "__qualname__", job))
