"""Resource subscriptions: `resources/subscribe` is one subscription per client connection and URI
however often it is sent, `resources/unsubscribe` ends it, a closed connection leaves none behind, and
one client's subscriptions are not another's; `subscriptions/listen` delivers each event once too.

Through the SDK's Python client (in process, stdio, streamable HTTP), raw JSON-RPC over stdio, and the
TypeScript SDK client (tests/js/subscriptions.mjs) over stdio, streamable HTTP and SSE. No sleeps:
after the events under test, a sentinel order on a second account is placed; its notification
arrives after every notification of an earlier event, so counting then is counting everything.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, cast

import anyio
import httpx2
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from conftest import make_worker, open_session
from mcp import Client, MCPDeprecationWarning, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.types import ResourceUpdatedNotification

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.server.resources import client_connection

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "js" / "subscriptions.mjs"
TS_CLIENT = ROOT / ".ci" / "node" / "node_modules" / "@modelcontextprotocol" / "client"
SIM, SPARE = "qmt://accounts/sim/events", "qmt://accounts/spare/events"
TWO_ACCOUNTS = {"accounts": {"sim": {"account_id": "88000001"}, "spare": {"account_id": "88000002"}}}
TWO_ACCOUNTS_TOML = '[accounts.sim]\naccount_id = "88000001"\n\n[accounts.spare]\naccount_id = "88000002"\n'


class Updates:
    """The `notifications/resources/updated` URIs one client got, in arrival order."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._arrived = anyio.Event()

    def record(self, uri: str) -> None:
        self.uris.append(uri)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def on_message(self, message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.record(str(message.params.uri))

    def count(self, uri: str) -> int:
        return self.uris.count(uri)

    async def wait_for(self, uri: str, n: int) -> None:
        with anyio.fail_after(30):
            while self.count(uri) < n:
                await self._arrived.wait()


class Peer(Protocol):
    """One client connection, whatever speaks for it."""

    updates: Updates

    async def tool(self, name: str, **args: Any) -> dict[str, Any]: ...

    async def subscribe(self, uri: str) -> None: ...

    async def unsubscribe(self, uri: str) -> None: ...


class SdkPeer:
    def __init__(self, client: Client, updates: Updates) -> None:
        self.client, self.updates = client, updates

    async def tool(self, name: str, **args: Any) -> dict[str, Any]:
        data = (await self.client.call_tool(name, args)).structured_content
        assert data is not None and data["ok"], data
        return data

    async def subscribe(self, uri: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)  # removed in 2026-07-28; still ours to serve
            await self.client.subscribe_resource(uri)

    async def unsubscribe(self, uri: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await self.client.unsubscribe_resource(uri)


class RawPeer:
    """Newline-delimited JSON-RPC 2.0 on a `qmt-mcp serve` process's stdin and stdout, nothing else."""

    def __init__(self, proc: Process) -> None:
        self.proc = proc
        self.updates = Updates()
        self._ids = itertools.count(1)
        self._answers: dict[int, dict[str, Any]] = {}
        self._answered = anyio.Event()

    async def read(self) -> None:
        assert self.proc.stdout is not None
        lines = BufferedByteReceiveStream(self.proc.stdout)
        while True:
            msg = json.loads(await lines.receive_until(b"\n", 1 << 24))
            if "id" in msg and ("result" in msg or "error" in msg):
                self._answers[msg["id"]] = msg
                self._answered.set()
                self._answered = anyio.Event()
            elif msg.get("method") == "notifications/resources/updated":
                self.updates.record(msg["params"]["uri"])

    async def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send((json.dumps({"jsonrpc": "2.0", **msg}) + "\n").encode())

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        rid = next(self._ids)
        await self.send({"id": rid, "method": method, "params": params})
        with anyio.fail_after(30):
            while rid not in self._answers:
                await self._answered.wait()
        answer = self._answers.pop(rid)
        assert "result" in answer, answer
        return cast(dict[str, Any], answer["result"])

    async def tool(self, name: str, **args: Any) -> dict[str, Any]:
        data = (await self.request("tools/call", {"name": name, "arguments": args}))["structuredContent"]
        assert data["ok"], data
        return cast(dict[str, Any], data)

    async def subscribe(self, uri: str) -> None:
        await self.request("resources/subscribe", {"uri": uri})

    async def unsubscribe(self, uri: str) -> None:
        await self.request("resources/unsubscribe", {"uri": uri})


async def place_resting(peer: Peer, account: str, cid: str) -> None:
    """A buy at the day's lower limit: it rests (nothing trades below it), so it makes no later events."""
    inst = await peer.tool("get_instrument", code="600000.SH")
    await peer.tool("place_order", account=account, code="600000.SH", side="buy", volume=100,
                    price=inst["down_limit"], client_order_id=cid)


async def sentinel(peer: Peer, cid: str, peers: list[Peer]) -> int:
    """Place the sentinel order on spare; once every peer has its notification, return how many sim
    events came before it (each peer has had the notifications of those it follows by then)."""
    await place_resting(peer, "spare", cid)
    spare = (await peer.tool("get_order_events", account="spare", limit=1000))["events"]
    first = min(e["seq"] for e in spare if e["client_order_id"] == cid)
    for p in peers:
        await p.updates.wait_for(SPARE, sum(e["seq"] < first for e in spare) + 1)
    sim = (await peer.tool("get_order_events", account="sim", limit=1000))["events"]
    return sum(e["seq"] < first for e in sim)


async def subscribe_twice_then_unsubscribe(a: Peer, b: Peer | None = None) -> None:
    """A follows sim twice and spare once (B each once); one sim order; A unsubscribes; another."""
    peers = [a] if b is None else [a, b]
    for uri in (SIM, SIM, SPARE):
        await a.subscribe(uri)
    if b is not None:
        await b.subscribe(SIM)
        await b.subscribe(SPARE)
    await place_resting(a, "sim", "a1")
    n1 = await sentinel(a, "s1", peers)
    assert n1 >= 1
    assert [p.updates.count(SIM) for p in peers] == [n1] * len(peers)  # once per event, though A asked twice
    await a.unsubscribe(SIM)
    await place_resting(a, "sim", "a2")
    n2 = await sentinel(a, "s2", peers)
    assert n2 > n1
    assert a.updates.count(SIM) == n1  # none since its unsubscribe
    if b is not None:
        assert b.updates.count(SIM) == n2  # B's own subscription went on


# --- the SDK's Python client -------------------------------------------------------------------


@pytest.mark.anyio
async def test_subscribing_twice_notifies_once_per_event_and_unsubscribing_stops_them(
    clock: ManualClock, tmp_path: Path,
) -> None:
    updates = Updates()
    worker = make_worker(parse_config(TWO_ACCOUNTS), tmp_path / "h", clock)
    async with open_session(worker, clock, mode="legacy", message_handler=updates.on_message) as s:
        caps = s.client.server_capabilities
        assert caps is not None and caps.resources is not None and caps.resources.subscribe is True
        await subscribe_twice_then_unsubscribe(SdkPeer(s.client, updates))
    await worker.close()


@pytest.mark.anyio
async def test_a_closed_connection_leaves_no_subscription_behind(clock: ManualClock, tmp_path: Path) -> None:
    worker = make_worker(parse_config(TWO_ACCOUNTS), tmp_path / "h", clock)
    async with open_session(worker, clock, mode="legacy") as s:
        legacy = s.server.feed.legacy
        peer = SdkPeer(s.client, Updates())
        for uri in (SIM, SIM, SPARE):
            await peer.subscribe(uri)
        assert legacy.uris() == [SIM, SPARE]
    assert legacy.uris() == []
    await worker.close()


def test_subscriptions_find_the_client_connection_behind_each_request_session() -> None:
    # The one private SDK attribute this server reads (ServerSession._connection): if a new mcp
    # release moves it, this says so by name rather than subscriptions silently going wrong.
    conn = Connection.for_loop(cast(Any, None))
    ctx: ServerRequestContext[Any, Any] = ServerRequestContext(
        session=ServerSession(cast(Any, None), conn), lifespan_context=None,
        protocol_version="2025-11-25", method="resources/subscribe")
    assert client_connection(ctx) is conn


@pytest.mark.anyio
async def test_listen_stream_gets_each_event_once_even_when_it_names_a_uri_twice(
    clock: ManualClock, tmp_path: Path,
) -> None:
    # Counted as the frames arrive (message_handler sees each one): the Subscription iterator itself
    # folds a URI still pending into one event, which would hide a duplicate.
    updates = Updates()
    worker = make_worker(parse_config(TWO_ACCOUNTS), tmp_path / "h", clock)
    async with open_session(worker, clock, message_handler=updates.on_message) as s:
        peer = SdkPeer(s.client, updates)
        with anyio.fail_after(30):
            async with s.client.listen(resource_subscriptions=[SIM, SIM, SPARE]):
                await place_resting(peer, "sim", "a1")
                n1 = await sentinel(peer, "s1", [peer])
        assert updates.count(SIM) == n1 >= 1
    await worker.close()


def _serve_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(TWO_ACCOUNTS_TOML)
    env = {k: v for k, v in os.environ.items() if k not in ("QMT_MCP_CONFIG", "QMT_MCP_TOKEN")}
    return {**env, "QMT_MCP_HOME": str(home)}


@pytest.mark.anyio
async def test_python_client_over_stdio_gets_each_event_once_and_none_after_unsubscribing(tmp_path: Path) -> None:
    updates = Updates()
    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                   env={"QMT_MCP_HOME": _serve_env(tmp_path / "home")["QMT_MCP_HOME"]})
    with anyio.fail_after(120):
        async with Client(params, mode="legacy", message_handler=updates.on_message) as c:
            await subscribe_twice_then_unsubscribe(SdkPeer(c, updates))


@pytest.mark.anyio
async def test_raw_jsonrpc_over_stdio_gets_each_event_once_and_none_after_unsubscribing(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        async with await anyio.open_process([sys.executable, "-m", "qmt_mcp", "serve"],
                                            env=_serve_env(tmp_path / "home"), stderr=None) as proc, \
                anyio.create_task_group() as tg:
            peer = RawPeer(proc)
            tg.start_soon(peer.read)
            init = await peer.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                     "clientInfo": {"name": "raw", "version": "1"}})
            assert init["capabilities"]["resources"]["subscribe"] is True
            await peer.send({"method": "notifications/initialized"})
            await subscribe_twice_then_unsubscribe(peer)
            tg.cancel_scope.cancel()


@pytest.fixture
def http_url(tmp_path: Path) -> Iterator[str]:
    from test_http_transport import _start

    proc, port = _start(tmp_path, "streamable-http", extra_config="\n" + TWO_ACCOUNTS_TOML)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@asynccontextmanager
async def _http_peer(url: str) -> AsyncIterator[SdkPeer]:
    from test_http_transport import TOKEN

    updates = Updates()
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    async with http, Client(streamable_http_client(url, http_client=http), mode="legacy",
                            message_handler=updates.on_message) as c:
        yield SdkPeer(c, updates)


@pytest.mark.anyio
async def test_two_http_clients_subscriptions_are_their_own(http_url: str) -> None:
    with anyio.fail_after(120):
        async with _http_peer(http_url) as a, _http_peer(http_url) as b:
            await subscribe_twice_then_unsubscribe(a, b)


# --- the TypeScript SDK client -----------------------------------------------------------------


def _node(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    if not TS_CLIENT.exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail(".ci/run installs @modelcontextprotocol/client; it is missing")
        pytest.skip("TypeScript MCP client not installed (bash .ci/run installs it into .ci/node)")
    res = subprocess.run(["node", str(DRIVER), *args], capture_output=True, text=True, timeout=120, check=False,
                         env=env, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    return cast(dict[str, Any], json.loads(res.stdout.strip().splitlines()[-1]))


def _check(report: dict[str, Any]) -> None:
    """The driver's counts against the same rule as subscribe_twice_then_unsubscribe."""
    n1, n2 = report["n1"], report["n2"]
    assert 1 <= n1 < n2
    assert report["a"] == [n1, n1]  # once per event though subscribed twice; none after unsubscribing
    if report["b"] is not None:
        assert report["b"] == [n1, n2]  # the other client's subscription went on


def test_typescript_client_over_stdio_gets_each_event_once_and_none_after_unsubscribing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _serve_env(home)
    _check(_node("stdio", sys.executable, str(home)))


@pytest.mark.parametrize(("transport", "clients"), [
    ("streamable-http", 1), ("streamable-http", 2), ("sse", 1), ("sse", 2),
])
def test_typescript_client_over_http_gets_each_event_once_and_none_after_unsubscribing(
    tmp_path: Path, transport: str, clients: int,
) -> None:
    from test_http_transport import TOKEN, _start

    proc, port = _start(tmp_path, transport, extra_config="\n" + TWO_ACCOUNTS_TOML)
    try:
        url = f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}"
        kind = "sse" if transport == "sse" else "http"
        _check(_node(kind, url, str(clients), env={**os.environ, "QMT_TOKEN": TOKEN}))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
