"""`qmt-mcp demo`: a plausible agent session against `qmt-mcp serve` over stdio, printed.

It uses the MCP SDK's own Client, spawns the real server (which spawns its worker), and works on
a fresh temporary state dir unless --home is given, so it never touches your paper account; the
temporary dir is removed at the end. The `=` lines are what a person would read: money in them is
written by `yuan_text`, the raw results (`←`) are JSON as the agent gets them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

from mcp import Client, StdioServerParameters

from .domain.money import yuan_text

WIDTH = 96


def _short(value: Any, limit: int = 900) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + " …"


class Transcript:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.step = 0

    def say(self, text: str) -> None:
        print(f"\n{'─' * WIDTH}\nagent: {text}")

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        self.step += 1
        print(f"  → {tool}({', '.join(f'{k}={v!r}' for k, v in (args or {}).items())})")
        res = await self.client.call_tool(tool, args or {})
        data = res.structured_content or {}
        if res.is_error:
            err = data.get("error", {})
            print(f"  ✗ isError  {err.get('code')}: {err.get('message')}")
            print(f"             hint: {err.get('hint')}  state_changed={err.get('state_changed')}")
        else:
            print(f"  ← {_short({k: v for k, v in data.items() if k != 'ok'})}")
        return data


def _positions_text(positions: list[dict[str, Any]]) -> None:
    for p in positions:
        cost = yuan_text(p["cost_basis"]) if p.get("cost_basis") is not None else "?"
        print(f"  = {p['code']} {p['name']}: {p['volume']} shares, cost {cost}, market value "
              f"{yuan_text(p['market_value'])}, unrealized P&L {yuan_text(p['unrealized_pnl'])}")


def _asset_text(asset: dict[str, Any]) -> None:
    if asset.get("ok"):
        print(f"  = cash {yuan_text(asset['cash'])} available, {yuan_text(asset['frozen_cash'])} frozen; total "
              f"asset {yuan_text(asset['total_asset'])}")


def _trades_text(trades: list[dict[str, Any]]) -> None:
    for t in trades:
        fees, stamp, transfer = t.get("fees", t["commission"]), t.get("stamp_duty") or 0, t.get("transfer_fee") or 0
        print(f"  = {t['trade_id']}: {t['side']} {t['volume']} shares of {t['code']} at {t['price']}, amount "
              f"{yuan_text(t['amount'])}, fees {yuan_text(fees)} (commission {yuan_text(t['commission'])}, "
              f"stamp duty {yuan_text(stamp)}, transfer fee {yuan_text(transfer)})")


async def run_demo(home: str | None = None) -> int:
    if home is not None:
        return await _session(home)
    # Removed at the end: the worker is gone by then (the server stops it before it exits). Errors
    # are ignored so a file still held open (Windows) does not turn a finished demo into a failure.
    with tempfile.TemporaryDirectory(prefix="qmt-mcp-demo-", ignore_cleanup_errors=True) as state:
        return await _session(state)


async def _session(state: str) -> int:
    env = {"QMT_MCP_HOME": state, "QMT_MCP_LOG_LEVEL": "warning"}
    if "QMT_MCP_CONFIG" in os.environ:
        env["QMT_MCP_CONFIG"] = os.environ["QMT_MCP_CONFIG"]
    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"], env=env)
    print(f"qmt-mcp demo: an agent session over stdio against `qmt-mcp serve` (state in {state})")
    async with Client(params) as client:
        t = Transcript(client)
        tools = await client.list_tools()
        print(f"connected ({client.protocol_version}); {len(tools.tools)} tools: "
              + ", ".join(tool.name for tool in tools.tools))

        t.say("First, is the gateway healthy and which accounts can I use?")
        await t.call("health")
        await t.call("list_accounts")

        t.say("Let me look at 浦发银行 (600000.SH): quote, recent daily bars, trading rules.")
        q = (await t.call("get_quote", {"codes": ["sh600000"]}))["quotes"][0]
        await t.call("get_klines", {"code": "600000.SH", "period": "1d", "count": 5})
        inst = await t.call("get_instrument", {"code": "600000"})

        ask1, bid5 = q["ask_prices"][0], q["bid_prices"][4]
        t.say(f"Preview buying 500 shares at the best ask {ask1} (a marketable limit order).")
        await t.call("preview_order", {"account": "sim", "code": "600000.SH", "side": "buy",
                                       "volume": 500, "price": ask1})

        t.say("The preview passes every check. Placing it, with my own client_order_id.")
        placed = await t.call("place_order", {"account": "sim", "code": "600000.SH", "side": "buy",
                                              "volume": 500, "price": ask1, "client_order_id": "demo-buy-1",
                                              "wait_seconds": 5})
        order = placed.get("order", {})
        print(f"  = order {order.get('order_id')} is {order.get('status')}: "
              f"{order.get('traded_volume')} shares at {order.get('traded_price')}")

        t.say("Retrying the same call (as after a timeout) must not buy twice.")
        await t.call("place_order", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 500,
                                     "price": ask1, "client_order_id": "demo-buy-1"})

        t.say("Positions and cash now (today's buy is not sellable until tomorrow: T+1).")
        _positions_text((await t.call("get_positions", {"account": "sim"})).get("positions", []))
        _asset_text(await t.call("get_asset", {"account": "sim"}))

        t.say(f"A resting bid below the market at {bid5}, then I change my mind and cancel it.")
        rest = await t.call("place_order", {"account": "sim", "code": "600000.SH", "side": "buy",
                                            "volume": 200, "price": bid5, "client_order_id": "demo-rest-1"})
        oid = rest.get("order", {}).get("order_id")
        await t.call("cancel_order", {"account": "sim", "order_id": oid})

        t.say("What happened, event by event?")
        ev = await t.call("get_order_events", {"account": "sim", "after_seq": 0})
        for e in ev.get("events", []):
            extra = e.get("status") or f"{e.get('volume')} @ {e.get('price')}"
            print(f"     seq {e['seq']:>3}  {e['type']:<13} order {e.get('order_id')}  {extra}")

        t.say("Selling the shares bought today should be refused (T+1), and nothing sent.")
        await t.call("place_order", {"account": "sim", "code": "600000.SH", "side": "sell", "volume": 500,
                                     "price": q["bid_prices"][0]})
        t.say("And an odd-lot buy, a price off the tick, a price past the daily limit:")
        await t.call("place_order", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 150,
                                     "price": ask1})
        await t.call("place_order", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100,
                                     "price": round(ask1 + 0.005, 3)})
        await t.call("place_order", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100,
                                     "price": round(inst["up_limit"] + 0.01, 2)})

        t.say("Finally, the day's orders, trades and risk usage.")
        orders = await t.call("get_orders", {"account": "sim"})
        _trades_text((await t.call("get_trades", {"account": "sim"})).get("trades", []))
        await t.call("get_risk_status", {"account": "sim"})
        print(f"\n{'─' * WIDTH}\ndone: {t.step} tool calls, {len(orders.get('orders', []))} orders placed, "
              "refused orders never reached the broker.")
    return 0
