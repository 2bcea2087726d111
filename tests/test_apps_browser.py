"""The MCP Apps views in a real host in a real browser: the test host (tests/apphost/, built from
@modelcontextprotocol/ext-apps' app-bridge and the TypeScript SDK client, bundled by esbuild) connects to
a real `qmt-mcp serve` over streamable HTTP on loopback with its bearer token, in Debian's chromium
driven by Playwright. Each view renders what its tool returned (checks, positions, candles, the
account's fills), the ticket's Approve sends the waiting order and it fills, Deny ends it denied, and
no view reaches the network. One server, one browser and one page for the module: the tests run in
order on them. Screenshots: .ci/artifacts/apps-ticket.png, apps-portfolio.png, apps-chart.png."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE = ROOT / ".ci" / "node" / "node_modules"
ESBUILD = NODE / ".bin" / "esbuild"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / ".ci" / "artifacts"
TOKEN = "apps-browser-token"
XSS = "<img src=x onerror=alert(1)>"
CONFIG = ('[accounts.sim]\naccount_id = "88000001"\npositions = {"600000.SH" = 1000, "000001.SZ" = 2000}\n\n'
          '[approval]\nhuman = "all"\n')

try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:   # the test extra installs it; a checkout without it skips (CI fails instead)
    async_playwright = None  # type: ignore[assignment]

_missing = "playwright is not installed" if async_playwright is None else (
    f"{CHROMIUM} is missing (apt-get install chromium)" if not os.path.exists(CHROMIUM) else
    "the npm packages of the test host are not installed (bash .ci/run installs them under .ci/node)"
    if not (ESBUILD.exists() and (NODE / "@modelcontextprotocol" / "ext-apps").is_dir()) else "")
if _missing and os.environ.get("CI"):
    raise RuntimeError(f"the MCP Apps browser tests cannot run under CI: {_missing}")
pytestmark = [pytest.mark.anyio, pytest.mark.skipif(bool(_missing), reason=_missing),
              pytest.mark.skipif(sys.platform == "win32", reason="Unix socket worker")]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"   # module-wide: the server, the browser and the host outlive one test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Host:
    page: Page
    browser: Browser
    origin: str
    connected: dict[str, Any]
    requests: list[str] = field(default_factory=list)

    async def call(self, tool: str, args: dict[str, Any], slot: str | None = None) -> dict[str, Any]:
        """The model's call of `tool` through the host (its view rendered in the iframe `slot`)."""
        return dict(await self.page.evaluate("([n, a, s]) => window.qmtHost.call(n, a, s)", [tool, args, slot]))

    def view(self, slot: str) -> Any:
        return self.page.frame_locator(f"#{slot}")


def _bundle(tmp: Path) -> str:
    """tests/apphost/host.html with host.mjs bundled for the browser (esbuild, from .ci/node)."""
    out = tmp / "host.js"
    subprocess.run([str(ESBUILD), str(ROOT / "tests" / "apphost" / "host.mjs"), "--bundle", "--format=iife",
                    "--platform=browser", "--log-level=warning", f"--outfile={out}"],
                   check=True, env={**os.environ, "NODE_PATH": str(NODE)})
    page = (ROOT / "tests" / "apphost" / "host.html").read_text(encoding="utf-8")
    return page.replace("/*bundle*/", out.read_text(encoding="utf-8").replace("</script", "<\\/script"))


@pytest.fixture(scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Host]:
    tmp = tmp_path_factory.mktemp("apps")
    home = tmp / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(CONFIG, encoding="utf-8")
    page_html = _bundle(tmp)
    port = _free_port()
    env = {**os.environ, "QMT_MCP_HOME": str(home), "QMT_MCP_TOKEN": TOKEN}
    env.pop("QMT_MCP_CONFIG", None)
    proc = await anyio.open_process([sys.executable, "-m", "qmt_mcp", "serve", "--transport", "streamable-http",
                                     "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
    origin = f"http://127.0.0.1:{port}"
    try:
        with anyio.fail_after(30):
            while True:   # another process: polled, bounded
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.05)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            try:
                # Tall enough for every view at once: Chrome does not render a cross-origin frame out of
                # view, so its ResizeObserver never runs and it never reports its height (the chart's
                # frame kept its first height, and a hover missed the markers at its clipped foot).
                page = await (await browser.new_context(viewport={"width": 800, "height": 2400})).new_page()
                page.set_default_timeout(20_000)
                requests: list[str] = []
                page.on("request", lambda r: requests.append(r.url))
                # The host page is served at the server's own origin (as a chat client's page is served
                # by its own server), so the client's requests to /mcp are same-origin; only this one
                # document is answered by the test, every other request goes to the real server.
                await page.route(f"{origin}/host.html", lambda route: route.fulfill(
                    status=200, content_type="text/html; charset=utf-8", body=page_html))
                await page.goto(f"{origin}/host.html")
                connected = await page.evaluate("([u, t]) => window.qmtHost.connect(u, t)", [f"{origin}/mcp", TOKEN])
                yield Host(page, browser, origin, connected, requests)
            finally:
                await browser.close()
    finally:
        proc.terminate()
        with anyio.fail_after(15):
            await proc.wait()
        await proc.aclose()


async def _order(h: Host) -> dict[str, Any]:
    """A buy of 100 600000.SH a little above the best ask: it fills as soon as it is sent."""
    q = (await h.call("get_quote", {"codes": ["600000.SH"]}))["quotes"][0]
    return {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100,
            "price": round(q["ask_prices"][0] * 1.005, 2)}


async def test_the_host_sees_the_views_and_keeps_decide_approval_from_the_model(host: Host) -> None:
    ui = {t["name"]: t["ui"] for t in host.connected["tools"]}
    assert ui["preview_order"] == {"resourceUri": "ui://qmt/order-ticket.html"}
    assert ui["get_positions"] == {"resourceUri": "ui://qmt/portfolio.html"}
    assert ui["get_klines"] == {"resourceUri": "ui://qmt/chart.html"}
    assert ui["decide_approval"]["visibility"] == ["app"]
    # The TypeScript client speaks the handshake era, where the SDK sends no server `extensions` (a
    # 2026-07-28 field); hosts go by the tools' `_meta.ui`, and the server by the client's declaration.
    assert host.connected["protocolVersion"] == "2025-11-25"
    model = await host.page.evaluate("() => window.qmtHost.modelTools()")
    assert "decide_approval" not in model and "place_order" in model
    assert await host.call("decide_approval", {"approval_id": "ap-x", "decision": "approve"}) == {"refusedByHost": True}


async def _ticket(h: Host, slot: str, cid: str) -> tuple[Any, dict[str, Any]]:
    """The model previews an order (the ticket shows it), then places it: it waits for a person."""
    order = await _order(h)
    preview = await h.call("preview_order", order, slot)
    assert preview["ok"] and preview["would_accept"]
    view = h.view(slot)
    await view.locator("#verdict").wait_for()
    assert await view.locator("#checks tr.check").count() == len(preview["checks"])
    assert await view.locator("#risk tr.check").count() == len(preview["risk"]["decisions"])
    for check in preview["checks"]:
        assert await view.locator(f'#checks tr[data-rule="{check["rule"]}"]').inner_text() == \
            f'{check["rule"]}\t{check["message"]}'
    total = await view.locator('tr[data-fee="total"] td.num').inner_text()
    assert total == f'{preview["estimate"]["total"]:,.2f}'
    assert "BUY 100 shares 600000.SH 浦发银行" in await view.locator("#title").inner_text()
    placed = await h.call("place_order", {**order, "client_order_id": cid})
    assert placed["order"]["status"] == "pending_approval"
    await view.locator('[data-action="approve"]').wait_for()
    return view, placed["order"]


async def test_approve_in_the_ticket_sends_the_waiting_order_and_it_fills(host: Host) -> None:
    view, waiting = await _ticket(host, "ticket-ok", "app-ok-1")
    assert await view.locator("#order-status").get_attribute("data-status") == "pending_approval"
    await view.locator("#note").fill("checked in the ticket")
    await host.page.locator("#ticket-ok").screenshot(path=str(ARTIFACTS / "apps-ticket.png"))
    await view.locator('[data-action="approve"]').click()
    await view.locator('#order-status[data-status="succeeded"]').wait_for()
    got = await host.call("get_order", {"account": "sim", "client_order_id": "app-ok-1"})
    assert got["order"]["status"] == "succeeded" and got["order"]["traded_volume"] == 100
    (decided,) = [e for e in got["events"] if e["type"] == "approval_decided"]
    assert (decided["channel"], decided["note"], decided["approval_id"]) == (
        "app", "checked in the ticket", waiting["approval"]["approval_id"])


async def test_deny_in_the_ticket_ends_the_order_denied(host: Host) -> None:
    view, _ = await _ticket(host, "ticket-no", "app-no-1")
    await view.locator("#note").fill(XSS)   # a person's text comes back in status_msg: shown as text
    await view.locator('[data-action="deny"]').click()
    await view.locator('#order-status[data-status="denied"]').wait_for()
    assert await view.locator("#status-msg").inner_text() == f"denied by a person (app): {XSS}"
    assert await view.locator("img").count() == 0
    got = await host.call("get_order", {"account": "sim", "client_order_id": "app-no-1"})
    assert got["order"]["status"] == "denied" and got["order"]["order_id"] is None


async def test_the_portfolio_shows_every_holding_cash_and_allocation(host: Host) -> None:
    result = await host.call("get_positions", {"account": "sim"}, "portfolio")
    asset = await host.call("get_asset", {"account": "sim"})
    view = host.view("portfolio")
    await view.locator("tr.position").first.wait_for()
    codes = sorted(p["code"] for p in result["positions"])
    assert codes == ["000001.SZ", "600000.SH"]
    assert sorted(await view.locator("tr.position").evaluate_all("rs => rs.map(r => r.dataset.code)")) == codes
    assert await view.locator("#cash").inner_text() == f'{asset["cash"]:,.2f}'
    assert await view.locator("#total").inner_text() == f'{asset["total_asset"]:,.2f}'
    assert await view.locator(".alloc-seg").count() == len(codes) + 1   # each holding, and cash
    row = view.locator('tr.position[data-code="600000.SH"]')
    p = next(p for p in result["positions"] if p["code"] == "600000.SH")
    assert p["volume"] == 1100 and "浦发银行" in await row.inner_text()
    await host.page.locator("#portfolio").screenshot(path=str(ARTIFACTS / "apps-portfolio.png"))


async def test_the_chart_draws_every_bar_and_marks_the_accounts_fill(host: Host) -> None:
    result = await host.call("get_klines", {"code": "600000.SH", "period": "1m", "count": 60}, "chart")
    view = host.view("chart")
    await view.locator("polygon.fill").first.wait_for()
    assert await view.locator("g.candle").count() == len(result["bars"]) > 10
    assert await view.locator("rect.vol").count() == len(result["bars"])
    trades = (await host.call("get_trades", {"account": "sim"}))["trades"]
    assert [t["client_order_id"] for t in trades] == ["app-ok-1"]
    marker = view.locator("polygon.fill-buy")
    assert await marker.count() == 1 and await view.locator("polygon.fill-sell").count() == 0
    # The frame takes the view's reported height (ui/notifications/size-changed): the whole chart,
    # fill markers at its foot included, is in view.
    content = await view.locator("html").evaluate("h => Math.ceil(h.getBoundingClientRect().height)")
    await host.page.wait_for_function("h => document.getElementById('chart').offsetHeight >= h", arg=content)
    await marker.hover()
    # The frame's own renderer shows the tip once the hover reaches it: wait for it, then read it.
    await view.locator("#tip", has_text="shares @").wait_for()
    tip = await view.locator("#tip").inner_text()
    assert tip.startswith(f'buy 100 shares @ {trades[0]["price"]} yuan · sim')
    await host.page.locator("#chart").screenshot(path=str(ARTIFACTS / "apps-chart.png"))


async def test_no_view_reached_the_network(host: Host) -> None:
    """Every request the page made went to the server's /mcp (the host's own) or was the host page."""
    assert host.requests, "the page made no requests at all"
    assert {u for u in host.requests if u not in (f"{host.origin}/host.html", f"{host.origin}/mcp")} == set()
