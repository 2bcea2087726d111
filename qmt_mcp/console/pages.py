"""The console's page, part by part: each part asks the worker what it shows and returns HTML, every
value from the broker, the market or a person escaped (fmt.py). The live part (approvals and orders)
is also served alone at /live, for the page to refresh in place when the event feed says something
happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..calls import Period
from ..domain.errors import QmtError
from ..domain.status import CANCELABLE
from .chart import kline_svg
from .fmt import cell, esc, pairs, table

_OPEN = frozenset(s.value for s in CANCELABLE)
PERIODS: tuple[Period, ...] = ("1m", "5m", "15m", "30m", "60m", "1d", "1w")
ORDER_COLUMNS = ["client_order_id", "order_id", "code", "name", "side", "volume", "price", "traded_volume",
                 "status", "status_msg", "time"]
Form = Callable[[str, dict[str, Any], str], str]   # (action, hidden fields, inner HTML) -> a POST form


class Reads(Protocol):
    async def call(self, name: str, args: dict[str, Any], operator: bool = False) -> dict[str, Any]: ...


CSS = """
body{font:14px system-ui,'Noto Sans CJK SC',sans-serif;margin:1em 2em;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:1.5em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td[data-field=name],td[data-field=time],td[data-field=code]{white-space:nowrap}
.flash{background:#fff3c4;padding:.4em}.err{color:#a00}
.approval{border:2px solid #c80;padding:.5em;margin:.5em 0}form.inline{display:inline}
.preview{display:flex;gap:1.5em;flex-wrap:wrap}.preview h4{margin:.3em 0}
.bad{color:#a00;font-weight:bold}.good{color:#070}
#feed{max-height:14em;overflow-y:auto;font:12px ui-monospace,monospace;margin:0;padding:0;list-style:none}
#feed-state[data-state=live]{color:#070}#feed-state[data-state=down]{color:#a00}
#audit[data-audit=damaged]{border:2px solid #a00;padding:.4em}
"""

# The feed (feed.py) appends each journal event as text, newest first, and refreshes the live part
# soon after, except while the person types there (a refresh would wipe a half-written note: it runs
# when they leave the field). A slow poll stands in while the feed is down.
JS = """
(function(){
  var live=document.getElementById('live'),feed=document.getElementById('feed'),
      state=document.getElementById('feed-state'),due=null,held=false;
  function typing(){var a=document.activeElement;return live.contains(a)&&a.tagName==='INPUT';}
  function refresh(){
    due=null;
    if(!live)return;
    if(typing()){held=true;return;}
    fetch('/live',{credentials:'same-origin'}).then(function(r){return r.ok?r.text():null})
      .then(function(t){if(t!==null)live.innerHTML=t;}).catch(function(){});
  }
  function soon(){if(due===null)due=setTimeout(refresh,100);}
  if(live)live.addEventListener('focusout',function(){if(held){held=false;soon();}});
  setInterval(soon,10000);
  var KEYS=['account','type','code','side','volume','price','status','decision','channel','client_order_id',
            'approval_id','rule','note','status_msg','message'];
  function show(ev){
    var li=document.createElement('li'),t=String(ev.time||'');
    li.dataset.type=ev.type||'';li.dataset.seq=ev.seq;
    var words=[t.slice(11,19)];
    KEYS.forEach(function(k){if(ev[k]!==undefined&&ev[k]!==null&&ev[k]!=='')words.push(k==='type'?ev[k]:k+'='+ev[k]);});
    li.textContent=words.join(' ');
    feed.insertBefore(li,feed.firstChild);
    while(feed.children.length>200)feed.removeChild(feed.lastChild);
  }
  var es=new EventSource('/events');
  es.addEventListener('hello',function(){state.textContent='live';state.dataset.state='live';});
  es.addEventListener('journal',function(m){try{show(JSON.parse(m.data));}catch(e){}soon();});
  es.addEventListener('down',function(){state.textContent='worker unavailable';state.dataset.state='down';});
  es.onerror=function(){state.textContent='reconnecting';state.dataset.state='down';};
})();
"""


def feed() -> str:
    return ("<section id='events'><h2>Live events <small id='feed-state' data-state='connecting'>connecting"
            "</small></h2><ol id='feed' reversed></ol></section>")


async def health(w: Reads) -> str:
    h = await w.call("health", {})
    flat = {f"{k}.{kk}": vv for k in ("worker", "market", "data") for kk, vv in (h.get(k) or {}).items()}
    accts = [{"account": n, **v, "trader": (v.get("trader") or {}).get("state")}
             for n, v in (h.get("accounts") or {}).items()]
    return f"<h2>Health</h2>{pairs(flat)}{table(accts)}"


def _preview(p: dict[str, Any] | None) -> str:
    """The order's preview as its approval would meet it now (worker/approvals.py): checks, fees, risk."""
    if not p:
        return ""
    if "error" in p:
        err = p["error"]
        return f"<p class='bad' data-part='preview-error'>{esc(err.get('code'))}: {esc(err.get('message'))}</p>"
    verdict = ("<p class='good' data-part='verdict'>approving now would send it: every check and risk rule "
               "passes</p>" if p.get("would_accept") else
               "<p class='bad' data-part='verdict'>approving now would not send it: a check or a risk rule "
               "refuses it (below)</p>")

    def rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"rule": i.get("rule"), "ok": "ok" if i.get("ok") else "REFUSED", "message": i.get("message")}
                for i in items]

    est = p.get("estimate") or {}
    fees = {k: est.get(k) for k in ("price", "amount", "commission", "stamp_duty", "transfer_fee", "total")}
    risk = p.get("risk") or {}
    return (f"{verdict}<div class='preview'>"
            f"<div data-part='checks'><h4>Checks (rule book)</h4>{table(rows(p.get('checks') or []))}</div>"
            f"<div data-part='fees'><h4>Fees and total</h4>{pairs(fees)}</div>"
            f"<div data-part='risk'><h4>Risk</h4>{table(rows(risk.get('decisions') or []))}"
            f"<h4>Usage today (without this order)</h4>{pairs(risk.get('usage') or {})}</div></div>")


async def live(w: Reads, form: Form, accounts: list[dict[str, Any]]) -> str:
    pending = (await w.call("list_approvals", {}, operator=True))["approvals"]
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
                   "volume": o["volume"], "price": o["price"], "amount": a["amount"],
                   "client_order_id": o["client_order_id"], "expires_at": a["expires_at"]}
        controls = ("<input name='note' placeholder='note (recorded)' maxlength='200'>"
                    "<button type='submit' name='decision' value='approve' data-action='approve'>Approve</button>"
                    "<button type='submit' name='decision' value='deny' data-action='deny'>Deny</button>")
        parts.append(f"<div class='approval' data-approval-id='{esc(a['approval_id'])}'>{table([row])}"
                     f"{_preview(a.get('preview'))}"
                     f"{form('decide', {'approval_id': a['approval_id']}, controls)}</div>")
    parts.append("<h2>Today's orders</h2>")
    for acct in accounts:
        name = acct["name"]
        orders = (await w.call("get_orders", {"account": name}))["orders"]
        cancel = "<button type='submit' data-action='cancel'>Cancel</button>"
        rows = ["<tr>" + "".join(cell(c, o.get(c)) for c in ORDER_COLUMNS) + "<td>"
                + (form("cancel", {"account": name, "order_id": o["order_id"]}, cancel)
                   if o.get("order_id") and o["status"] in _OPEN else "") + "</td></tr>"
                for o in orders]
        head = "".join(f"<th>{esc(c)}</th>" for c in ORDER_COLUMNS)
        parts.append(f"<h3>{esc(name)}</h3>" + (f"<table><tr>{head}<th></th></tr>{''.join(rows)}</table>"
                                               if orders else "<p>none</p>"))
    return "".join(parts)


async def accounts_part(w: Reads, accounts: list[dict[str, Any]]) -> str:
    parts = ["<h2>Accounts</h2>"]
    for acct in accounts:
        name = acct["name"]
        asset = await w.call("get_asset", {"account": name})
        positions = (await w.call("get_positions", {"account": name}))["positions"]
        parts.append(f"<h3>{esc(name)} ({esc(acct.get('account_id'))}{', live' if acct.get('live') else ''})</h3>"
                     f"<div data-account='{esc(name)}' data-part='asset'>{pairs(asset)}</div>"
                     f"<div data-account='{esc(name)}' data-part='positions'>{table(positions)}</div>")
    return "".join(parts)


async def risk_part(w: Reads, form: Form) -> str:
    parts = ["<h2>Risk</h2>"]
    for name, r in (await w.call("get_risk_status", {}))["accounts"].items():
        breaker = r["breaker"]
        summary = {"baseline_total_asset": r["baseline_total_asset"],
                   "current_total_asset": r["current_total_asset"], "daily_pnl": r["daily_pnl"],
                   "breaker": "tripped" if breaker["tripped"] else "ok",
                   "breaker_reason": breaker.get("reason"), "kill_switch": "on" if r["kill_switch"] else "off"}
        on = not r["kill_switch"]
        kill = form("kill_switch", {"account": name, "on": "1" if on else "0"},
                    "<input name='note' placeholder='note (recorded)' maxlength='200' required>"
                    f"<button type='submit' data-action='kill-switch-{'on' if on else 'off'}'>"
                    f"Kill switch {'on' if on else 'off'}</button>")
        reset = form("reset_risk", {"account": name},
                     "<input name='note' placeholder='note (recorded)' maxlength='200' required>"
                     "<button type='submit' data-action='reset-risk'>Reset breaker</button>")
        blocked = r["limits"].get("blocked_codes") or []
        block_rows = "".join(
            f"<li>{esc(c)} " + form("block", {"account": name, "code": c, "blocked": "0"},
                                     "<input name='note' placeholder='note' maxlength='200' required>"
                                     "<button type='submit' data-action='unblock'>Remove</button>")
            + "</li>" for c in blocked)
        add = form("block", {"account": name, "blocked": "1"},
                   "<input name='code' placeholder='600000.SH' required>"
                   "<input name='note' placeholder='note' maxlength='200' required>"
                   "<button type='submit' data-action='block'>Block</button>")
        limits = {k: v for k, v in r["limits"].items() if k != "blocked_codes"}
        parts.append(f"<h3>{esc(name)}</h3>{pairs(summary)}<p>{kill}</p><p>{reset}</p>"
                     f"<h4>Limits</h4>{pairs(limits)}<h4>Usage today</h4>{pairs(r['usage'])}"
                     f"<h4>Block list</h4><ul>{block_rows}</ul>{add}")
    return "".join(parts)


async def audit_part(w: Reads) -> str:
    """The audit chain as the worker verifies it (worker/audit_status.py): intact or where it is damaged."""
    try:
        a = await w.call("audit_status", {})
    except QmtError as exc:
        return f"<section id='audit' data-audit='unknown'><h2>Audit trail</h2><p class='err'>{esc(exc.code.value)}: " \
               f"{esc(exc.message)}</p></section>"
    state = "intact" if a.get("intact") else "damaged"
    facts = {"status": state, "found": a.get("found"), "records": a.get("records"), "head_hash": a.get("head_hash"),
             "anchored_records": a.get("anchored_records")}
    return (f"<section id='audit' data-audit='{state}'><h2>Audit trail: "
            f"<span class='{'good' if state == 'intact' else 'bad'}'>{state}</span></h2>{pairs(facts)}"
            "<p>The same check as <code>qmt-mcp audit verify</code>, run by the worker on its own trail.</p>"
            "</section>")


async def chart_part(w: Reads, accounts: list[dict[str, Any]], query: dict[str, str]) -> str:
    """The form that picks a code (a GET: it changes nothing), and the chart of that code's klines with
    the account's fills of it marked."""
    names = [str(a["name"]) for a in accounts]
    account = query.get("account") if query.get("account") in names else (names[0] if names else "")
    period = str(query.get("period")) if query.get("period") in PERIODS else "1m"
    code = (query.get("code") or "").strip()[:16]
    try:
        count = min(max(int(query.get("count") or 60), 1), 500)
    except ValueError:
        count = 60
    options = "".join(f"<option{' selected' if n == account else ''}>{esc(n)}</option>" for n in names)
    periods = "".join(f"<option{' selected' if p == period else ''}>{p}</option>" for p in PERIODS)
    picker = (f"<form id='chart-form' method='get' action='/#chart'>account <select name='account'>{options}"
              f"</select> code <input name='code' value='{esc(code)}' placeholder='600000.SH' required> period "
              f"<select name='period'>{periods}</select> bars <input name='count' type='number' min='1' max='500' "
              f"value='{count}'> <button type='submit' data-action='chart'>Show</button></form>")
    body = ""
    if code and account:
        try:
            k = await w.call("get_klines", {"code": code, "period": period, "count": count})
            trades = (await w.call("get_trades", {"account": account}))["trades"]
            fills = [t for t in trades if t.get("code") == k["code"]]
            body = kline_svg(k["code"], period, k["bars"], fills)
        except QmtError as exc:
            body = f"<p class='err' id='chart-error'>{esc(exc.code.value)}: {esc(exc.message)}</p>"
    return f"<section id='chart'><h2>Chart</h2>{picker}{body}</section>"

