"""What the operator console shows, in a real browser (Debian's chromium driven by Playwright): a pending
approval with its whole preview (checks, fees, risk), an approval that expires sending nothing and the page
saying so without a reload, the kline chart with the account's fills, money to the fen and shares as
integers, and the audit chain's status, intact and then damaged at a named line.

The worker runs in this process on a manual clock (tests/conftest.py: its real HTTP API on a Unix socket,
behind the real MCP server and the SDK's Client), so expiry and the market are driven without sleeping; the
console is the real console app under uvicorn, finding that worker through worker.json as it finds a
spawned one. One worker, one console and one browser for the module: the tests run in order on them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from conftest import START, TOKEN, Session, make_worker, open_session
from test_console import ARTIFACTS, BROWSER_ARGS, CHROMIUM, _free_port, _missing

from qmt_mcp.calls import BlockCodeArgs, DecideApprovalArgs
from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.console import Console
from qmt_mcp.console.fmt import price, shares, yuan

try:
    from playwright.async_api import Page, async_playwright
except ImportError:   # test_console.py says why (and fails under CI)
    async_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(bool(_missing), reason=_missing),
              pytest.mark.skipif(sys.platform == "win32", reason="Unix socket worker")]
CODE = "600000.SH"
# Orders up to 5,000 yuan go straight through (the chart's fills); larger ones wait for a person.
CONFIG = {"accounts": {"sim": {"account_id": "88000001", "positions": {CODE: 1000}}},
          "approval": {"human": "all", "above_value": 5000, "timeout_s": 60}}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Rig:
    home: Path
    s: Session
    page: Page
    base: str


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    home = tmp_path_factory.mktemp("views") / "home"
    clock = ManualClock(START)
    worker = make_worker(parse_config(CONFIG), home, clock)
    try:
        async with open_session(worker, clock) as s:
            assert s.worker_sock is not None
            os.chmod(s.worker_sock, 0o600)   # as a spawned worker leaves it: the console trusts no other
            # What a spawning server writes: the console finds this worker the way it finds that one.
            fd = os.open(home / "worker.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"uds": str(s.worker_sock), "token": TOKEN}, f)
            port = _free_port()
            console = Console(home, "127.0.0.1", port)
            server = uvicorn.Server(uvicorn.Config(console.app(), host="127.0.0.1", port=port, log_level="warning",
                                                   timeout_graceful_shutdown=1))
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.serve)
                for _ in range(1000):   # uvicorn says so only by this flag: polled, bounded
                    if server.started:
                        break
                    await anyio.sleep(0.01)
                try:
                    async with async_playwright() as pw:
                        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
                        try:
                            page = await (await browser.new_context(viewport={"width": 1200, "height": 900})).new_page()
                            page.set_default_timeout(10_000)
                            await page.goto(console.login_url)
                            yield Rig(home, s, page, f"http://127.0.0.1:{port}")
                        finally:
                            await browser.close()
                finally:
                    server.should_exit = True
    finally:
        await worker.close()


async def _order(r: Rig, cid: str, side: str, volume: int) -> dict[str, Any]:
    q = (await r.s.ok("get_quote", codes=[CODE]))["quotes"][0]
    at = q["ask_prices"][0] if side == "buy" else q["bid_prices"][0]
    return await r.s.ok("place_order", account="sim", code=CODE, side=side, volume=volume, price=at,
                        client_order_id=cid)


async def _feed_live(page: Page) -> None:
    await page.wait_for_selector("#feed-state[data-state=live]")


def test_money_is_written_exactly_to_the_fen_and_shares_as_integers() -> None:
    assert yuan(0.1 + 0.2) == "0.30" and yuan(1e6) == "1,000,000.00" and yuan(-0.004) == "0.00"
    assert yuan(994884.95) == "994,884.95" and yuan(10.005) == "10.01"   # half-up, from the written figure
    assert price(10.5) == "10.50" and price(3.123) == "3.123" and shares(100.0) == "100" and shares(1000) == "1000"


async def test_a_pending_approval_shows_its_checks_fees_and_risk_as_approving_would_meet_them(rig: Rig) -> None:
    order = (await _order(rig, "view-big-1", "buy", 1000))["order"]
    assert order["status"] == "pending_approval"
    await rig.page.goto(rig.base + "/")
    box = rig.page.locator(".approval", has_text="view-big-1")
    preview = await rig.s.ok("preview_order", account="sim", code=CODE, side="buy", volume=1000, price=order["price"])
    checks = await box.locator("[data-part=checks]").inner_text()
    assert preview["checks"] and all(c["rule"] in checks and c["message"] in checks for c in preview["checks"])
    fees = box.locator("[data-part=fees]")
    est = preview["estimate"]
    for key in ("amount", "commission", "stamp_duty", "transfer_fee", "total"):
        assert await fees.locator(f"[data-field={key}]").inner_text() == f"{Decimal(repr(est[key])):,.2f}", key
    risk = box.locator("[data-part=risk]")
    assert "order value 10," in await risk.locator("tr", has_text="MAX_ORDER_VALUE").inner_text()
    assert "passes" in await box.locator("[data-part=verdict]").inner_text()

    # The preview is what approving would meet now: a code blocked since the agent asked shows refused.
    ops = rig.s.worker.handlers()
    await ops["set_blocked_code"](BlockCodeArgs(account="sim", code=CODE, blocked=True, note="hold", channel="console"))
    await rig.page.reload()
    blocked = box.locator("[data-part=risk] tr", has_text="SYMBOL_BLOCKED")
    assert "REFUSED" in await blocked.inner_text() and CODE in await blocked.inner_text()
    assert "would not send" in await box.locator("[data-part=verdict]").inner_text()
    await ops["set_blocked_code"](BlockCodeArgs(account="sim", code=CODE, blocked=False, note="ok", channel="console"))
    await ops["decide_approval"](DecideApprovalArgs(approval_id=order["approval"]["approval_id"], decision="deny",
                                                    channel="console"))


async def test_an_expired_approval_sends_nothing_and_the_page_says_so_without_a_reload(rig: Rig) -> None:
    await rig.page.goto(rig.base + "/")
    await _feed_live(rig.page)
    await rig.page.evaluate("window.notReloaded = true")
    order = (await _order(rig, "view-late-1", "buy", 1000))["order"]
    await rig.page.locator(".approval", has_text="view-late-1").wait_for(timeout=1000)
    rig.s.clock.advance(61)
    assert await rig.s.worker.service.approvals.expire() == [order["approval"]["approval_id"]]
    await rig.page.locator("#feed li", has_text="decision=expired").wait_for(timeout=1000)
    row = rig.page.locator("#live tr", has_text="view-late-1")
    await row.locator("[data-field=status]", has_text="denied").wait_for(timeout=1000)
    assert await row.locator("[data-field=status_msg]").inner_text() == "expired"
    assert await rig.page.locator(".approval", has_text="view-late-1").count() == 0
    assert await rig.page.evaluate("window.notReloaded") is True
    assert len(rig.s.counter.orders) == 0   # nothing reached the broker (the first test's order was denied)
    got = (await rig.s.ok("get_order", account="sim", client_order_id="view-late-1"))["order"]
    assert (got["status"], got["order_id"]) == ("denied", None)


async def test_the_chart_draws_each_bar_and_marks_the_accounts_fills_with_side_shares_and_price(rig: Rig) -> None:
    bought = (await _order(rig, "view-buy-1", "buy", 100))["order"]
    await rig.s.advance(60)
    sold = (await _order(rig, "view-sell-1", "sell", 100))["order"]
    assert (bought["status"], sold["status"]) == ("succeeded", "succeeded")
    await rig.page.goto(rig.base + "/")
    await rig.page.fill("#chart-form input[name=code]", "600000")
    await rig.page.fill("#chart-form input[name=count]", "30")
    await rig.page.click('[data-action="chart"]')
    await rig.page.wait_for_selector("#kline")
    bars = (await rig.s.ok("get_klines", code=CODE, period="1m", count=30))["bars"]
    assert len(bars) == 30
    assert await rig.page.locator("#kline g.candle").count() == len(bars)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await rig.page.locator("#chart").screenshot(path=str(ARTIFACTS / "console-chart.png"))
    trades = [t for t in (await rig.s.ok("get_trades", account="sim"))["trades"] if t["code"] == CODE]
    for side in ("buy", "sell"):
        (t,) = [t for t in trades if t["side"] == side]
        marker = rig.page.locator(f"#kline g.fill.{side}")
        assert await marker.count() == 1
        assert await marker.locator("title").text_content() == \
            f"{side} {t['volume']} shares @ {price(t['price'])} yuan, {t['time']}"


async def test_money_shows_in_yuan_to_the_fen_shares_as_integers_and_chinese_names_as_they_are(rig: Rig) -> None:
    await rig.page.goto(rig.base + "/")
    asset = await rig.s.ok("get_asset", account="sim")
    part = rig.page.locator("[data-account=sim][data-part=asset]")
    for key in ("cash", "market_value", "total_asset"):
        shown = await part.locator(f"[data-field={key}]").inner_text()
        assert shown == f"{Decimal(repr(asset[key])):,.2f}" and shown.rsplit(".", 1)[1].isdigit(), key
    (pos,) = (await rig.s.ok("get_positions", account="sim"))["positions"]
    row = rig.page.locator("[data-account=sim][data-part=positions] tr", has_text=CODE)
    assert await row.locator("[data-field=volume]").inner_text() == str(pos["volume"]) == "1000"
    assert await row.locator("[data-field=can_use_volume]").inner_text() == str(pos["can_use_volume"])
    assert await row.locator("[data-field=name]").inner_text() == pos["name"] == "浦发银行"


async def test_the_audit_chains_status_shows_intact_then_names_the_damaged_line(rig: Rig) -> None:
    trail = rig.home / "audit.jsonl"
    lines = trail.read_text(encoding="utf-8").splitlines()
    await rig.page.goto(rig.base + "/")
    audit = rig.page.locator("#audit")
    assert await audit.get_attribute("data-audit") == "intact"
    assert await audit.locator("[data-field=records]").inner_text() == str(len(lines)) and len(lines) >= 3
    assert await audit.locator("[data-field=head_hash]").inner_text() == json.loads(lines[-1])["hash"]
    original = trail.read_bytes()
    try:
        second = json.loads(lines[1])
        second["args"]["volume"] = 999_999   # a record edited afterwards
        lines[1] = json.dumps(second, ensure_ascii=False)
        trail.write_text("\n".join(lines) + "\n", encoding="utf-8")
        await rig.page.reload()
        assert await audit.get_attribute("data-audit") == "damaged"
        assert (await audit.locator("[data-field=found]").inner_text()).startswith("line 2")
    finally:
        trail.write_bytes(original)
