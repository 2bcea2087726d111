"""The console's web app: who may ask (login link, session cookie, CSRF token, same origin, Host), the
routes, and the person's actions; the page's parts are in pages.py, the feed in feed.py."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..config import WorkerConfig, home_dir, load_config
from ..domain.errors import QmtError
from ..operator_link import find
from ..server.worker_client import Endpoint
from . import pages
from .feed import relay
from .fmt import esc

log = logging.getLogger("qmt_mcp.console")
COOKIE = "qmt_console"
CHANNEL = "console"
TIMEOUT_S = 30.0
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "connect-src 'self'; form-action 'self'")


@dataclass
class Session:
    csrf: str
    flash: str = ""


class Worker:
    """The worker the console reaches (operator_link.py: worker.url when the config sets it, else the one
    worker.json names), found afresh for each request: a worker restarted by its server writes a new
    worker.json (another socket, another token), and the console follows it without a restart."""

    def __init__(self, home: Path, config: WorkerConfig | None = None) -> None:
        self.home = home
        self.config = config or WorkerConfig()

    def stream_endpoint(self) -> tuple[Endpoint, str]:
        """Where the worker's event stream is, and the worker token that reads it."""
        link = find(self.home, self.config)
        return link.endpoint, link.worker_token()

    async def call(self, name: str, args: dict[str, Any], operator: bool = False) -> dict[str, Any]:
        link = find(self.home, self.config)
        return await link.call(name, {**args, "channel": CHANNEL} if operator else args, TIMEOUT_S, operator)


def _error(exc: QmtError) -> str:
    # With the hint: "set $QMT_WORKER_TOKEN", "copy operator.key", "is the tunnel open" say what to do.
    hint = f"<br><span data-part='hint'>{esc(exc.hint)}</span>" if exc.hint else ""
    return f"<p class='err'>{esc(exc.code.value)}: {esc(exc.message)}{hint}</p>"


class Console:
    def __init__(self, home: Path, host: str, port: int, allow_remote: bool = False,
                 worker: WorkerConfig | None = None) -> None:
        self.worker = Worker(home, worker)
        self.host, self.port, self.remote = host, port, allow_remote
        self.login_token: str | None = secrets.token_urlsafe(24)
        self.sessions: dict[str, Session] = {}

    @property
    def login_url(self) -> str:
        return f"http://{self.host}:{self.port}/login?t={self.login_token}"

    # ----- who may ask
    def _host_ok(self, request: Request) -> bool:
        if self.remote:
            return True
        host = request.headers.get("host", "")
        return host in {f"{h}:{self.port}" for h in ("127.0.0.1", "localhost", "[::1]", self.host)}

    def session(self, request: Request) -> Session | None:
        sid = request.cookies.get(COOKIE)
        return self.sessions.get(sid) if sid else None

    def _same_origin(self, request: Request) -> bool:
        origin, host = request.headers.get("origin"), request.headers.get("host")
        return bool(origin and host) and origin in (f"http://{host}", f"https://{host}")

    async def login(self, request: Request) -> Response:
        given = request.query_params.get("t", "")
        if not self._host_ok(request) or self.login_token is None \
                or not secrets.compare_digest(given.encode(), self.login_token.encode()):
            return PlainTextResponse("this login link is not valid (it works once; restart the console for "
                                     "another)", status_code=403)
        self.login_token = None   # once: a link left in a terminal's scrollback opens nothing later
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(csrf=secrets.token_urlsafe(32))
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")
        return resp

    # ----- pages
    def _allowed(self, request: Request) -> Session | None:
        s = self.session(request)
        return s if s is not None and self._host_ok(request) else None

    async def index(self, request: Request) -> Response:
        s = self._allowed(request)
        if s is None:
            return PlainTextResponse("log in with the link `qmt-mcp console` printed", status_code=401)
        flash, s.flash = s.flash, ""
        body = ["<h1>qmt-mcp operator console</h1>"
                + (f"<p class='flash' id='flash'>{esc(flash)}</p>" if flash else ""), pages.feed()]
        try:
            # What waits for the person first; the state of the machinery last.
            accounts = (await self.worker.call("list_accounts", {}))["accounts"]
            body.append(f"<div id='live'>{await self._live(s, accounts)}</div>")
            body.append(await pages.accounts_part(self.worker, accounts))
            body.append(await pages.chart_part(self.worker, accounts, dict(request.query_params)))
            body.append(await pages.risk_part(self.worker, self._former(s)))
            body.append(await pages.health(self.worker))
            body.append(await pages.audit_part(self.worker))
        except QmtError as exc:
            body.append(_error(exc))
        page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>qmt-mcp console</title>"
                f"<style>{pages.CSS}</style></head><body>{''.join(body)}<script>{pages.JS}</script></body></html>")
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                                           "X-Frame-Options": "DENY"})

    async def live(self, request: Request) -> Response:
        s = self._allowed(request)
        if s is None:
            return PlainTextResponse("not logged in", status_code=401)
        try:
            accounts = (await self.worker.call("list_accounts", {}))["accounts"]
            return HTMLResponse(await self._live(s, accounts), headers={"Cache-Control": "no-store"})
        except QmtError as exc:
            return HTMLResponse(_error(exc))

    async def events(self, request: Request) -> Response:
        """The live event feed (feed.py): the worker's journal as Server-Sent Events."""
        if self._allowed(request) is None:
            return PlainTextResponse("not logged in", status_code=401)
        return StreamingResponse(relay(self.worker, request.headers.get("last-event-id")),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    def _former(self, s: Session) -> pages.Form:
        return lambda action, fields, inner: self._form(s, action, fields, inner)

    def _form(self, s: Session, action: str, fields: dict[str, Any], inner: str) -> str:
        hidden = "".join(f"<input type='hidden' name='{esc(k)}' value='{esc(v)}'>"
                         for k, v in {"csrf": s.csrf, **fields}.items())
        return f"<form class='inline' method='post' action='/action/{esc(action)}'>{hidden}{inner}</form>"

    async def _live(self, s: Session, accounts: list[dict[str, Any]]) -> str:
        return await pages.live(self.worker, self._former(s), accounts)

    # ----- actions: POST, CSRF token, same origin
    async def action(self, request: Request) -> Response:
        s = self.session(request)
        if s is None or not self._host_ok(request):
            return PlainTextResponse("not logged in", status_code=403)
        if not self._same_origin(request):
            return PlainTextResponse("cross-origin request refused", status_code=403)
        form = await request.form()
        given = form.get("csrf")
        if not isinstance(given, str) or not secrets.compare_digest(given.encode(), s.csrf.encode()):
            return PlainTextResponse("missing or wrong CSRF token", status_code=403)
        f = {k: v for k, v in form.items() if isinstance(v, str)}
        handler = ACTIONS.get(request.path_params["name"])
        if handler is None:
            return PlainTextResponse("no such action", status_code=404)
        try:
            s.flash = await handler(self.worker, f)
        except QmtError as exc:
            s.flash = f"{exc.code.value}: {exc.message}"
        except (KeyError, ValueError) as exc:
            s.flash = f"bad request: {exc}"
        return RedirectResponse("/", status_code=303)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/login", self.login), Route("/", self.index), Route("/live", self.live),
                                 Route("/events", self.events), Route("/action/{name}", self.action, methods=["POST"])])


async def _decide(w: Worker, f: dict[str, str]) -> str:
    args: dict[str, Any] = {"approval_id": f["approval_id"], "decision": f["decision"]}
    if f.get("note", "").strip():
        args["note"] = f["note"].strip()
    out = await w.call("decide_approval", args, operator=True)
    if out.get("kind") == "reset_risk":
        tripped = (out.get("breaker") or {}).get("tripped")
        return f"approval {out.get('approval_id')} {out.get('decision')}: the breaker of {out.get('account')} is " \
               + ("still tripped" if tripped else "not tripped")
    order = out.get("order") or {}
    return f"approval {out.get('approval_id')} {out.get('decision')}: order {order.get('client_order_id')} is " \
           f"{order.get('status')}"


async def _cancel(w: Worker, f: dict[str, str]) -> str:
    out = await w.call("cancel_order", {"account": f["account"], "order_id": f["order_id"]})
    return f"cancel asked: order {f['order_id']} is {(out.get('order') or {}).get('status', out.get('status'))}"


async def _kill(w: Worker, f: dict[str, str]) -> str:
    on = f["on"] == "1"
    await w.call("set_kill_switch", {"account": f["account"], "on": on, "note": f["note"]}, operator=True)
    return f"kill switch {'on' if on else 'off'} for {f['account']}"


async def _reset(w: Worker, f: dict[str, str]) -> str:
    await w.call("operator_reset_risk", {"account": f["account"], "note": f["note"]}, operator=True)
    return f"daily-loss breaker of {f['account']} reset"


async def _block(w: Worker, f: dict[str, str]) -> str:
    blocked = f["blocked"] == "1"
    await w.call("set_blocked_code", {"account": f["account"], "code": f["code"], "blocked": blocked,
                                      "note": f["note"]}, operator=True)
    return f"{f['code']} {'blocked' if blocked else 'unblocked'} for {f['account']}"


ACTIONS: dict[str, Callable[[Worker, dict[str, str]], Awaitable[str]]] = {
    "decide": _decide, "cancel": _cancel, "kill_switch": _kill, "reset_risk": _reset, "block": _block}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    if not is_loopback(args.host):
        if not args.allow_remote:
            print(f"qmt-mcp: refusing --host {args.host}: the console moves money; it listens on loopback only "
                  "unless --allow-remote (then reach it through an SSH tunnel or a TLS proxy)", file=sys.stderr)
            return 2
        print(f"qmt-mcp: WARNING: the console listens on {args.host} without TLS; anyone who can reach it and "
              "gets the login link can trade. Put an SSH tunnel or a TLS proxy in front.", file=sys.stderr)
    console = Console(home_dir(), args.host, args.port, args.allow_remote, load_config().worker)
    print(f"qmt-mcp console: open {console.login_url}  (the link works once)", flush=True)
    # An open event feed must not hold a shutdown: the browser reconnects to the next console.
    uvicorn.run(console.app(), host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=1)
    return 0


def add_command(sub: Any) -> None:
    c = sub.add_parser("console", help="the operator console (a web page); prints a one-time login URL")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8767)
    c.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (use TLS or a tunnel)")
    c.set_defaults(func=cmd_console)
