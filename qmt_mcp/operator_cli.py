"""The operator commands: `qmt-mcp kill-switch`, `risk reset`, `block`, `approvals`, `approve`, `deny`.

A person at the terminal, not an agent: they call the worker's operator calls with the operator key.
The worker is found as the MCP server of this state dir finds it (operator_link.py): `[worker] url`
when the config sets it (a standalone worker, say on the Windows host, with the person's copy of its
operator.key), else the worker a `qmt-mcp serve` spawned here, through worker.json, trusted only if
this user owns it and nobody else can write it: the operator key goes only to a worker of this user's.
With no worker answering there is nothing to change (the controls live in the worker's journal), so
they say so and exit 1 instead of starting one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from .config import WorkerConfig, home_dir, load_config
from .domain.errors import QmtError

TIMEOUT_S = 30.0
CHANNEL = "cli"


async def operator_call(home: Path, name: str, args: dict[str, Any], worker: WorkerConfig | None = None,
                        ) -> dict[str, Any]:
    """Call the operator call `name` of the worker this state dir reaches (`worker`: the config's [worker];
    None: the defaults, the local worker). Raises QmtError (the worker's code; WORKER_UNAVAILABLE when
    none answers, UNAUTHORIZED when the key is missing or not that worker's)."""
    # Here, not at the top: `qmt-mcp worker` imports this module's parser and needs none of the client.
    from .operator_link import find

    link = find(home, worker or WorkerConfig())
    return await link.call(name, {**args, "channel": CHANNEL}, TIMEOUT_S, operator=True)


def _run(args: argparse.Namespace, name: str, call_args: dict[str, Any], said: str | Callable[[dict[str, Any]], str],
         ) -> int:
    try:
        out = anyio.run(operator_call, home_dir(), name, call_args, load_config().worker)
    except QmtError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": exc.to_dict()}, ensure_ascii=False))
        else:
            print(f"qmt-mcp: {exc.code.value}: {exc.message}" + (f"\n{exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 1
    print(json.dumps({"ok": True, **out}, ensure_ascii=False) if args.json else said if isinstance(said, str)
          else said(out))
    return 0


def cmd_kill_switch(args: argparse.Namespace) -> int:
    on = args.state == "on"
    return _run(args, "set_kill_switch", {"account": args.account, "on": on, "note": args.note},
                f"kill switch {args.state} for {args.account}: orders that open or grow a position are "
                f"{'refused' if on else 'decided by the other rules again'}")


def cmd_risk(args: argparse.Namespace) -> int:
    return _run(args, "operator_reset_risk", {"account": args.account, "note": args.note},
                f"daily-loss breaker of {args.account} reset")


def cmd_block(args: argparse.Namespace) -> int:
    blocked = args.action == "add"
    return _run(args, "set_blocked_code", {"account": args.account, "code": args.code, "blocked": blocked,
                                           "note": args.note},
                f"{args.code} {'blocked' if blocked else 'unblocked'} for {args.account}")


def _listed(out: dict[str, Any]) -> str:
    rows = out.get("approvals") or []
    if not rows:
        return "no approvals are waiting"
    lines = []
    for a in rows:
        o = a.get("order")
        if o is None:   # an agent's breaker reset (approvals.py): no order to show, the agent's note
            lines.append(f"{a['approval_id']}  {a['account']}  reset the daily-loss breaker "
                         f"(the agent's note: {(a.get('reset') or {}).get('note', '')})  expires {a['expires_at']}")
            continue
        lines.append(f"{a['approval_id']}  {a['account']}  {o['side']} {o['volume']} {o['code']} {o['name']} "
                     f"@ {o['price']} (about {a['amount']:.2f} yuan)  client_order_id={o['client_order_id']}  "
                     f"expires {a['expires_at']}")
    return "\n".join(lines)


def _decided(out: dict[str, Any]) -> str:
    if out.get("kind") == "reset_risk":
        tripped = (out.get("breaker") or {}).get("tripped")
        return (f"approval {out.get('approval_id')} {out.get('decision')}: the breaker of {out.get('account')} is "
                + ("still tripped" if tripped else "not tripped"))
    order = out.get("order") or {}
    return (f"approval {out.get('approval_id')} {out.get('decision')}: order {order.get('client_order_id')} is "
            f"{order.get('status')}" + (f" ({order['status_msg']})" if order.get("status_msg") else ""))


def cmd_approvals(args: argparse.Namespace) -> int:
    return _run(args, "list_approvals", {}, _listed)


def cmd_decide(args: argparse.Namespace) -> int:
    call_args: dict[str, Any] = {"approval_id": args.approval_id, "decision": args.decision}
    if args.note:
        call_args["note"] = args.note
    return _run(args, "decide_approval", call_args, _decided)


def add_commands(sub: Any) -> None:
    """The operator commands on the `qmt-mcp` parser's subcommands (`sub`: argparse's subparsers action)."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--account", required=True, help="configured account name")
        p.add_argument("--note", required=True, help="why (recorded in the journal and the audit trail)")
        p.add_argument("--json", action="store_true", help="print the worker's answer as JSON")

    k = sub.add_parser("kill-switch", help="switch an account's kill switch on or off (a person's control)")
    k.add_argument("state", choices=["on", "off"])
    common(k)
    k.set_defaults(func=cmd_kill_switch)

    r = sub.add_parser("risk", help="a person's risk controls")
    r.add_argument("action", choices=["reset"], help="reset: lift a tripped daily-loss breaker")
    common(r)
    r.set_defaults(func=cmd_risk)

    b = sub.add_parser("block", help="add a code to an account's block list, or remove it")
    b.add_argument("action", choices=["add", "remove"])
    b.add_argument("code")
    common(b)
    b.set_defaults(func=cmd_block)

    a = sub.add_parser("approvals", help="list the orders waiting for a person")
    a.add_argument("--json", action="store_true", help="print the worker's answer as JSON")
    a.set_defaults(func=cmd_approvals)
    for verb, decision in (("approve", "approve"), ("deny", "deny")):
        d = sub.add_parser(verb, help=f"{verb} an order waiting for a person (the id from `qmt-mcp approvals`)")
        d.add_argument("approval_id")
        d.add_argument("--note", help="why (recorded in the journal and the audit trail)")
        d.add_argument("--json", action="store_true", help="print the worker's answer as JSON")
        d.set_defaults(func=cmd_decide, decision=decision)
