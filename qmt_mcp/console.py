"""`qmt-mcp console`: the operator console, a web page for the person beside the agent.

Its own process. It finds the running worker the way the operator CLI does (worker.json, trusted only if
this user owns it and nobody else can write it: server/supervisor.read_worker_info), reads with the
worker token worker.json carries (the server's credential for ordinary calls) and acts with the
operator key (operator.key) for a person's calls, which pass `channel: "console"`.

The security model, because the page can move money:
- Loopback by default; any other --host needs --allow-remote (then use an SSH tunnel or a TLS proxy).
- A one-time login token, printed at start, buys a random in-memory session cookie (HttpOnly,
  SameSite=Strict); every page needs it. A restart of the console ends every session.
- Every state-changing request is a POST with the session's CSRF token and a same-origin `Origin`;
  anything else is 403. A loopback console also checks `Host`, so a rebound DNS name cannot reach it.
- Broker and market text (names, remarks, notes) goes through html.escape wherever it is interpolated.
"""

from __future__ import annotations

import argparse
import html
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
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .config import home_dir
from .domain.errors import QmtError
from .domain.status import CANCELABLE
from .operator_cli import _key, _no_worker

log = logging.getLogger("qmt_mcp.console")
COOKIE = "qmt_console"
CHANNEL = "console"
_OPEN = frozenset(s.value for s in CANCELABLE)
TIMEOUT_S = 30.0


def esc(value: Any) -> str:
    """Text for HTML: everything from the broker, the market or a person is escaped, quotes too."""
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class Session:
    csrf: str
    flash: str = ""


class Worker:
    """The worker of `home`, found afresh for each request: a worker restarted by its server writes a new
    worker.json (another socket, another token), and the console follows it without a restart."""

    def __init__(self, home: Path) -> None:
        self.home = home

    async def call(self, name: str, args: dict[str, Any], operator: bool = False) -> dict[str, Any]:
        from .server.supervisor import read_worker_info, worker_endpoint
        from .server.worker_client import WorkerClient, WorkerGone

        said: list[str] = []
        info = read_worker_info(self.home, said.append, "the console does not use it")
        endpoint = None if info is None else worker_endpoint(info, said.append)
        if info is None or endpoint is None:
            raise _no_worker(self.home, "; ".join(said))
        client = WorkerClient(endpoint, _key(self.home) if operator else str(info["token"]), TIMEOUT_S)
        try:
            return await client.call(name, {**args, "channel": CHANNEL} if operator else args)
        except WorkerGone:
            raise _no_worker(self.home, "worker.json names one that does not answer") from None
        finally:
            await client.aclose()


CSS = """
body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:1.5em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
th{background:#f4f4f4}.flash{background:#fff3c4;padding:.4em}.err{color:#a00}
.approval{border:2px solid #c80;padding:.5em;margin:.5em 0}form.inline{display:inline}
"""

# Refreshes the approvals and orders every 2 s, except while the person types in that part of the page
# (a refresh would wipe a half-written note).
JS = """
(function(){
  var live=document.getElementById('live');
  setInterval(function(){
    if(live.contains(document.activeElement)&&document.activeElement.tagName==='INPUT')return;
    fetch('/live',{credentials:'same-origin'}).then(function(r){return r.ok?r.text():null})
      .then(function(t){if(t!==null)live.innerHTML=t;}).catch(function(){});
  },2000);
})();
"""


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>none</p>"
    cols = columns or list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], dict | list)))
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{esc(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def pairs(d: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


class Console:
    def __init__(self, home: Path, host: str, port: int, allow_remote: bool = False) -> None:
        self.worker = Worker(home)
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
    async def index(self, request: Request) -> Response:
        s = self.session(request)
        if s is None or not self._host_ok(request):
            return PlainTextResponse("log in with the link `qmt-mcp console` printed", status_code=401)
        flash, s.flash = s.flash, ""
        body = ["<h1>qmt-mcp operator console</h1>"
                + (f"<p class='flash' id='flash'>{esc(flash)}</p>" if flash else "")]
        try:
            body.append(await self._health())
            accounts = (await self.worker.call("list_accounts", {}))["accounts"]
            body.append(f"<div id='live'>{await self._live(s, accounts)}</div>")
            body.append(await self._accounts(accounts))
            body.append(await self._risk(s))
        except QmtError as exc:
            body.append(f"<p class='err'>{esc(exc.code.value)}: {esc(exc.message)}</p>")
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>qmt-mcp console</title>"
                f"<style>{CSS}</style></head><body>{''.join(body)}<script>{JS}</script></body></html>")
        return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                           "script-src 'unsafe-inline'; connect-src 'self'; form-action 'self'",
                                           "Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    async def live(self, request: Request) -> Response:
        s = self.session(request)
        if s is None or not self._host_ok(request):
            return PlainTextResponse("not logged in", status_code=401)
        try:
            accounts = (await self.worker.call("list_accounts", {}))["accounts"]
            return HTMLResponse(await self._live(s, accounts), headers={"Cache-Control": "no-store"})
        except QmtError as exc:
            return HTMLResponse(f"<p class='err'>{esc(exc.code.value)}: {esc(exc.message)}</p>")

    def _form(self, s: Session, action: str, fields: dict[str, Any], inner: str) -> str:
        hidden = "".join(f"<input type='hidden' name='{esc(k)}' value='{esc(v)}'>"
                         for k, v in {"csrf": s.csrf, **fields}.items())
        return f"<form class='inline' method='post' action='/action/{esc(action)}'>{hidden}{inner}</form>"

    async def _health(self) -> str:
        h = await self.worker.call("health", {})
        flat = {f"{k}.{kk}": vv for k in ("worker", "market", "data") for kk, vv in (h.get(k) or {}).items()}
        accts = [{"account": n, **v, "trader": (v.get("trader") or {}).get("state")}
                 for n, v in (h.get("accounts") or {}).items()]
        return f"<h2>Health</h2>{pairs(flat)}{table(accts)}"

    async def _live(self, s: Session, accounts: list[dict[str, Any]]) -> str:
        pending = (await self.worker.call("list_approvals", {}, operator=True))["approvals"]
        parts = [f"<h2>Pending approvals ({len(pending)})</h2>"]
        if not pending:
            parts.append("<p>none</p>")
        for a in pending:
            o = a.get("order")
            if o is None:   # an agent's breaker reset waiting for a person: no order, the agent's note
                row = {"account": a["account"], "request": "reset the daily-loss breaker",
                       "agent's note": (a.get("reset") or {}).get("note"), "expires_at": a["expires_at"]}
            else:
                row = {"account": a["account"], "code": o["code"], "name": o["name"], "side": o["side"],
                       "volume": o["volume"], "price": o["price"], "amount": f"{a['amount']:.2f}",
                       "client_order_id": o["client_order_id"], "expires_at": a["expires_at"]}
            controls = ("<input name='note' placeholder='note (recorded)' maxlength='200'>"
                        "<button type='submit' name='decision' value='approve' data-action='approve'>Approve</button>"
                        "<button type='submit' name='decision' value='deny' data-action='deny'>Deny</button>")
            parts.append(f"<div class='approval' data-approval-id='{esc(a['approval_id'])}'>{table([row])}"
                         f"{self._form(s, 'decide', {'approval_id': a['approval_id']}, controls)}</div>")
        parts.append("<h2>Today's orders</h2>")
        for acct in accounts:
            name = acct["name"]
            orders = (await self.worker.call("get_orders", {"account": name}))["orders"]
            cols = ["client_order_id", "order_id", "code", "name", "side", "volume", "price", "traded_volume",
                    "status", "status_msg", "time"]
            rows = "".join(
                "<tr>" + "".join(f"<td>{esc(o.get(c))}</td>" for c in cols) + "<td>"
                + (self._form(s, "cancel", {"account": name, "order_id": o["order_id"]},
                              "<button type='submit' data-action='cancel'>Cancel</button>")
                   if o.get("order_id") and o["status"] in _OPEN else "") + "</td></tr>"
                for o in orders)
            head = "".join(f"<th>{esc(c)}</th>" for c in cols)
            parts.append(f"<h3>{esc(name)}</h3>" + (f"<table><tr>{head}<th></th></tr>{rows}</table>" if orders
                                                   else "<p>none</p>"))
        return "".join(parts)

    async def _accounts(self, accounts: list[dict[str, Any]]) -> str:
        parts = ["<h2>Accounts</h2>"]
        for acct in accounts:
            name = acct["name"]
            asset = await self.worker.call("get_asset", {"account": name})
            positions = (await self.worker.call("get_positions", {"account": name}))["positions"]
            parts.append(f"<h3>{esc(name)} ({esc(acct.get('account_id'))}{', live' if acct.get('live') else ''})</h3>"
                         f"{pairs(asset)}{table(positions)}")
        return "".join(parts)

    async def _risk(self, s: Session) -> str:
        parts = ["<h2>Risk</h2>"]
        for name, r in (await self.worker.call("get_risk_status", {}))["accounts"].items():
            breaker = r["breaker"]
            summary = {"baseline_total_asset": r["baseline_total_asset"],
                       "current_total_asset": r["current_total_asset"], "daily_pnl": r["daily_pnl"],
                       "breaker": "tripped" if breaker["tripped"] else "ok",
                       "breaker_reason": breaker.get("reason"), "kill_switch": "on" if r["kill_switch"] else "off"}
            on = not r["kill_switch"]
            kill = self._form(s, "kill_switch", {"account": name, "on": "1" if on else "0"},
                              "<input name='note' placeholder='note (recorded)' maxlength='200' required>"
                              f"<button type='submit' data-action='kill-switch-{'on' if on else 'off'}'>"
                              f"Kill switch {'on' if on else 'off'}</button>")
            reset = self._form(s, "reset_risk", {"account": name},
                               "<input name='note' placeholder='note (recorded)' maxlength='200' required>"
                               "<button type='submit' data-action='reset-risk'>Reset breaker</button>")
            blocked = r["limits"].get("blocked_codes") or []
            block_rows = "".join(
                f"<li>{esc(c)} " + self._form(s, "block", {"account": name, "code": c, "blocked": "0"},
                                               "<input name='note' placeholder='note' maxlength='200' required>"
                                               "<button type='submit' data-action='unblock'>Remove</button>")
                + "</li>" for c in blocked)
            add = self._form(s, "block", {"account": name, "blocked": "1"},
                             "<input name='code' placeholder='600000.SH' required>"
                             "<input name='note' placeholder='note' maxlength='200' required>"
                             "<button type='submit' data-action='block'>Block</button>")
            limits = {k: v for k, v in r["limits"].items() if k != "blocked_codes"}
            parts.append(f"<h3>{esc(name)}</h3>{pairs(summary)}<p>{kill}</p><p>{reset}</p>"
                         f"<h4>Limits</h4>{pairs(limits)}<h4>Usage today</h4>{pairs(r['usage'])}"
                         f"<h4>Block list</h4><ul>{block_rows}</ul>{add}")
        return "".join(parts)

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
                                 Route("/action/{name}", self.action, methods=["POST"])])


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
    console = Console(home_dir(), args.host, args.port, args.allow_remote)
    print(f"qmt-mcp console: open {console.login_url}  (the link works once)", flush=True)
    uvicorn.run(console.app(), host=args.host, port=args.port, log_level="warning")
    return 0


def add_command(sub: Any) -> None:
    c = sub.add_parser("console", help="the operator console (a web page); prints a one-time login URL")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8767)
    c.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (use TLS or a tunnel)")
    c.set_defaults(func=cmd_console)
