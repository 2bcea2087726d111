"""The operator console in a real browser (Debian's chromium driven by Playwright): a person logs in with
the printed one-time URL, sees the agent's order waiting, approves or denies it, switches the kill
switch; the agent is a real MCP client over stdio against a real `qmt-mcp serve`, the console its own
`qmt-mcp console` process. Forged requests (no CSRF token, another origin) are refused, and text from
the broker or a person renders as text. One serve, one console and one browser for the module: the
tests run in order on them, to keep the time small."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from test_approvals_cli import CONFIG, _buy
from test_operator_controls import _audited, _call, _cli, _home, _params

from qmt_mcp.console import Console, Session

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / ".ci" / "artifacts"
XSS = "<img src=x onerror=alert(1)>"
# As root the sandbox must be off; the rest keeps a headless chromium from reaching for the network.
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]

try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:   # the test extra installs it; a checkout without it skips (CI fails instead)
    async_playwright = None  # type: ignore[assignment]

_missing = "playwright is not installed" if async_playwright is None else (
    f"{CHROMIUM} is missing (apt-get install chromium)" if not os.path.exists(CHROMIUM) else "")
if _missing and os.environ.get("CI"):
    raise RuntimeError(f"the console's browser tests cannot run under CI: {_missing}")
pytestmark = [pytest.mark.anyio, pytest.mark.skipif(bool(_missing), reason=_missing),
              pytest.mark.skipif(sys.platform == "win32", reason="Unix socket worker")]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"   # module-wide: the browser and the agent's session outlive one test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    home: Path
    agent: Client
    browser: Browser
    page: Page
    base: str
    login_url: str


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    home = _home(tmp_path_factory.mktemp("console"), CONFIG)
    port = _free_port()
    async with Client(_params(home)) as agent:
        await _call(agent, "health")   # the server has spawned its worker and written worker.json
        proc = await anyio.open_process([sys.executable, "-m", "qmt_mcp", "console", "--port", str(port)],
                                        env={**os.environ, "QMT_MCP_HOME": str(home)}, stderr=subprocess.DEVNULL)
        try:
            assert proc.stdout is not None
            line = b""
            while not line.endswith(b"\n"):   # the login URL is its first line
                line += await proc.stdout.receive()
            login_url = line.decode().split("open ", 1)[1].split()[0]
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient() as http:
                for _ in range(200):   # another process: polled, bounded
                    try:
                        await http.get(base + "/")
                        break
                    except httpx.TransportError:
                        await anyio.sleep(0.05)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
                try:
                    page = await (await browser.new_context(viewport={"width": 1200, "height": 900})).new_page()
                    page.set_default_timeout(20_000)
                    yield Rig(home, agent, browser, page, base, login_url)
                finally:
                    await browser.close()
        finally:
            proc.terminate()
            with anyio.fail_after(10):
                await proc.wait()
            await proc.aclose()


async def test_the_printed_login_url_logs_in_once_and_every_page_needs_the_session(rig: Rig) -> None:
    assert rig.login_url.startswith(rig.base + "/login?t=")
    async with httpx.AsyncClient() as http:
        assert (await http.get(rig.base + "/")).status_code == 401
    await rig.page.goto(rig.login_url)
    assert rig.page.url == rig.base + "/"
    await rig.page.wait_for_selector("#live")
    (cookie,) = await rig.page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    async with httpx.AsyncClient() as http:   # the link worked once: nobody else logs in with it
        assert (await http.get(rig.login_url)).status_code == 403


async def _decide_in_console(rig: Rig, cid: str, action: str, note: str, screenshot: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}

    async def place() -> None:
        out.update(await _buy(rig.agent, cid, wait=45))

    async with anyio.create_task_group() as tg:
        tg.start_soon(place)
        # The page refreshes its approvals every 2 s: the order appears without a reload.
        box = rig.page.locator(".approval", has_text=cid)
        await box.wait_for()
        if screenshot:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await rig.page.screenshot(path=str(ARTIFACTS / "console-pending.png"), full_page=True)
        await box.locator("input[name=note]").fill(note)
        await box.locator(f'[data-action="{action}"]').click()
    return out


async def test_approve_in_the_console_lets_the_agents_waiting_place_order_return_the_filled_order(rig: Rig) -> None:
    with anyio.fail_after(60):
        out = await _decide_in_console(rig, "console-ok-1", "approve", "looks right", screenshot=True)
    assert out["ok"] and out["order"]["status"] == "succeeded" and out["order"]["order_id"] is not None
    (record,) = _audited(rig.home, "decide_approval")
    assert record["by"] == {"operator": True, "channel": "console"} and record["args"]["note"] == "looks right"
    await rig.page.wait_for_selector("#flash")
    assert "approved" in await rig.page.inner_text("#flash")


async def test_deny_in_the_console_ends_the_order_denied_with_the_note_shown_as_text(rig: Rig) -> None:
    with anyio.fail_after(60):
        out = await _decide_in_console(rig, "console-no-1", "deny", XSS)
    assert out["order"]["status"] == "denied" and XSS in out["order"]["status_msg"]
    got = (await _call(rig.agent, "get_order", account="sim", client_order_id="console-no-1"))["order"]
    assert got["status"] == "denied" and got["order_id"] is None
    row = rig.page.locator("tr", has_text="console-no-1")
    assert XSS in await row.inner_text()   # the note is text on the page...
    assert await rig.page.locator("img").count() == 0   # ...and never an element
    assert "&lt;img" in await row.inner_html()


async def test_a_broker_name_that_looks_like_html_renders_as_text(rig: Rig) -> None:
    class FakeWorker:
        async def call(self, name: str, args: dict[str, Any], operator: bool = False) -> dict[str, Any]:
            order = {"client_order_id": "x-1", "order_id": "1", "code": "600000.SH", "name": XSS, "side": "buy",
                     "volume": 100, "price": 10.0, "traded_volume": 0, "status": "reported", "status_msg": XSS}
            if name == "list_approvals":
                return {"approvals": [{"approval_id": "ap-1", "account": "sim", "order": order, "amount": 1000.0,
                                       "expires_at": XSS}]}
            return {"orders": [order]}

    console = Console(rig.home, "127.0.0.1", 1)
    console.worker = FakeWorker()  # type: ignore[assignment]
    s = Session(csrf="c")
    page = await rig.browser.new_page()
    try:
        await page.set_content(await console._live(s, [{"name": XSS}]))
        assert await page.locator("img").count() == 0
        assert (await page.inner_text("body")).count(XSS) >= 4   # name (twice), expiry, status message, account
    finally:
        await page.close()


async def test_the_kill_switch_from_the_console_refuses_the_agents_next_buy(rig: Rig) -> None:
    await rig.page.goto(rig.base + "/")
    form = rig.page.locator("form", has=rig.page.locator('[data-action="kill-switch-on"]'))
    await form.locator("input[name=note]").fill("stop for now")
    await form.locator('[data-action="kill-switch-on"]').click()
    await rig.page.wait_for_selector('[data-action="kill-switch-off"]')
    refused = await _buy(rig.agent, "console-kill-1")
    assert refused["ok"] is False and refused["error"]["code"] == "RISK_REJECT"
    assert "KILL_SWITCH" in str(refused["error"])
    (record,) = _audited(rig.home, "set_kill_switch")
    assert record["by"]["channel"] == "console"


async def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(rig: Rig) -> None:
    await rig.page.goto(rig.base + "/")
    csrf = await rig.page.locator("input[name=csrf]").first.get_attribute("value")
    (cookie,) = await rig.page.context.cookies()
    form = {"account": "sim", "on": "1", "note": "forged"}
    async with httpx.AsyncClient(base_url=rig.base, cookies={cookie["name"]: cookie["value"]}) as http:
        url = "/action/kill_switch"
        same = {"Origin": rig.base}
        assert (await http.post(url, data=form, headers=same)).status_code == 403                      # no token
        assert (await http.post(url, data={**form, "csrf": "nope"}, headers=same)).status_code == 403  # wrong one
        assert (await http.post(url, data={**form, "csrf": csrf},
                                headers={"Origin": "http://evil.example"})).status_code == 403
        assert (await http.post(url, data={**form, "csrf": csrf})).status_code == 403                  # no Origin
        assert (await http.get(url)).status_code == 405
        # The same request with both is taken: the refusals above were the checks, not a broken form.
        ok = await http.post(url, data={**form, "on": "0", "csrf": csrf}, headers=same)
        assert ok.status_code == 303
    assert [r["args"]["note"] for r in _audited(rig.home, "set_kill_switch")] == ["stop for now", "forged"]


async def test_an_agents_order_appears_in_the_live_feed_within_a_second_without_a_reload(rig: Rig) -> None:
    await rig.page.goto(rig.base + "/")
    await rig.page.wait_for_selector("#feed-state[data-state=live]")   # the feed has reached the worker
    await rig.page.evaluate("window.notReloaded = true")
    placed = await _buy(rig.agent, "console-feed-1")   # not waiting: it is pending once this returns
    assert placed["ok"] and placed["order"]["status"] == "pending_approval"
    entry = rig.page.locator("#feed li", has_text="client_order_id=console-feed-1")
    await entry.first.wait_for(timeout=1000)
    assert "approval_requested" in await entry.first.inner_text()
    # ...and the event refreshed the approvals in place: the order waits there, on the same page.
    await rig.page.locator(".approval", has_text="console-feed-1").wait_for(timeout=1000)
    assert await rig.page.evaluate("window.notReloaded") is True
    # Decided elsewhere (the CLI), with a note that looks like markup: the feed shows it, as text.
    rc, _ = await _cli(rig.home, "deny", placed["order"]["approval"]["approval_id"], "--note", XSS)
    assert rc == 0
    decided = rig.page.locator("#feed li", has_text="decision=denied")
    await decided.first.wait_for(timeout=5000)
    assert XSS in await decided.first.inner_text() and await rig.page.locator("img").count() == 0
    await rig.page.locator("#live tr", has_text="console-feed-1").locator("[data-field=status]",
                                                                            has_text="denied").wait_for()
    assert await rig.page.evaluate("window.notReloaded") is True
