"""Shared fixtures: a real worker (real SQLite, simulated broker) behind the real MCP server,
reached through the SDK's own Client. The worker's HTTP API is served by uvicorn on a Unix socket
in this process; the clock is a ManualClock so matching and expiry are driven without sleeping."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
import uvicorn
from mcp import Client

from qmt_mcp.backends.faults import FaultInjectingBroker
from qmt_mcp.backends.port import BrokerPort
from qmt_mcp.bootstrap import Worker, build_worker
from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config, parse_config
from qmt_mcp.domain.timeutil import CN_TZ
from qmt_mcp.server.app import ServerDeps, build_server
from qmt_mcp.server.supervisor import socket_path
from qmt_mcp.server.worker_client import WorkerClient
from qmt_mcp.worker.call_protocol import CallProtocol

START = datetime(2026, 11, 20, 10, 0, 0, tzinfo=CN_TZ)  # a Friday morning
FAST_SUBMIT = parse_config({"worker": {"submit_timeout_s": 0.2}})  # fault tests: a short order deadline
# The same tests on both backends: the simulator, and xtquant's own layer over the simulated native layer.
BACKENDS = {"sim": Config(), "xtquant": parse_config({"worker": {"backend": "xtquant"}, "xtquant": {"native": "sim"}})}
TOKEN = "test-token"


def on_backend(backend: str, sections: dict[str, Any]) -> Config:
    """The config `sections` on `backend` (a key of BACKENDS): xtquant over the simulated native layer."""
    if backend == "xtquant":
        sections = {**sections, "worker": {**sections.get("worker", {}), "backend": "xtquant"},
                    "xtquant": {**sections.get("xtquant", {}), "native": "sim"}}
    return parse_config(sections)


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """The name of a backend from BACKENDS: the test runs on each."""
    return str(request.param)
# Lines a test wants in the CI log whatever the verbosity (the fault suite's counts).
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY:
        terminalreporter.section("fault suite")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def cfg() -> Config:
    return Config()


class Session:
    """A connected MCP client plus the worker behind it, with schema checks on every result."""

    def __init__(self, client: Client, worker: Worker, clock: ManualClock) -> None:
        self.server: Any = None
        self.worker_sock: Path | None = None   # where the worker's HTTP API listens (open_session)
        self.client = client
        self.worker = worker
        self.clock = clock
        self._schemas: dict[str, dict[str, Any]] = {}

    async def schemas(self) -> dict[str, dict[str, Any]]:
        if not self._schemas:
            for tool in (await self.client.list_tools()).tools:
                assert tool.output_schema is not None, tool.name
                self._schemas[tool.name] = tool.output_schema
        return self._schemas

    async def call(self, tool: str, **args: Any) -> dict[str, Any]:
        """Call a tool; its structuredContent must validate against its outputSchema (ok or not)."""
        res = await self.client.call_tool(tool, args)
        data = res.structured_content
        assert data is not None, f"{tool} returned no structuredContent"
        jsonschema.validate(data, (await self.schemas())[tool])
        assert res.is_error == (not data["ok"])
        return data

    async def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        data = await self.call(tool, **args)
        assert data["ok"], data.get("error")
        return data

    async def error(self, tool: str, **args: Any) -> dict[str, Any]:
        data = await self.call(tool, **args)
        assert not data["ok"], f"{tool} unexpectedly succeeded: {data}"
        return data["error"]

    async def marketable_buy(self, client_order_id: str, code: str = "600000.SH", volume: int = 100) -> dict[str, Any]:
        """Arguments of a buy at the best ask now (it fills at once unless something gets in the way)."""
        q = (await self.ok("get_quote", codes=[code]))["quotes"][0]
        return {"account": "sim", "code": code, "side": "buy", "volume": volume, "price": q["ask_prices"][0],
                "client_order_id": client_order_id}

    @property
    def counter(self) -> Any:
        """The simulated counter behind either backend (sim, or xtquant over the simulated native layer)."""
        broker = self.worker.broker
        native = getattr(broker, "native", None)
        return native.broker.counter if native is not None else broker.counter  # type: ignore[attr-defined]

    async def advance(self, seconds: float) -> None:
        """Let simulated time pass and the counter match resting orders against the new quotes."""
        self.clock.advance(seconds)
        await self.worker.service.tick()


def make_worker(cfg: Config, home: Path | None, clock: ManualClock, wrap: Any = None) -> Worker:
    return build_worker(cfg, home, clock, wrap=wrap)


def faulty_worker(cfg: Config, home: Path, clock: ManualClock) -> tuple[Worker, FaultInjectingBroker]:
    """A worker whose broker is the simulator behind a scriptable fault injector."""
    holder: list[FaultInjectingBroker] = []

    def wrap(inner: BrokerPort) -> BrokerPort:
        holder.append(FaultInjectingBroker(inner))
        return holder[0]

    worker = make_worker(cfg, home, clock, wrap=wrap)
    return worker, holder[0]


@asynccontextmanager
async def serve_worker(worker: Worker, sock: Path) -> AsyncIterator[WorkerClient]:
    """The worker's real HTTP API under uvicorn on a Unix socket, in this process (so the manual
    clock still drives it); background jobs off: tests tick and reconcile by hand."""
    sock.parent.mkdir(parents=True, exist_ok=True)
    server = uvicorn.Server(uvicorn.Config(worker.app(TOKEN, background=False), uds=str(sock), http=CallProtocol,
                                           log_level="warning", lifespan="on", timeout_graceful_shutdown=0.5))
    stopped = anyio.Event()

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        for _ in range(500):
            if server.started:
                break
            await anyio.sleep(0.01)
        wc = WorkerClient.for_uds(str(sock), TOKEN)
        try:
            yield wc
        finally:
            await wc.aclose()
            server.should_exit = True
            # Even when the test failed: let uvicorn close its socket rather than be cancelled mid-way.
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await stopped.wait()


@asynccontextmanager
async def open_session(
    worker: Worker, clock: ManualClock, confirm_human: Any = "off", transport: Callable[[Any], Any] | None = None,
    **client_kw: Any,
) -> AsyncIterator[Session]:
    """`transport(server)`, when given, is what the client connects through instead of the server itself."""
    sock = socket_path(Path(tempfile.mkdtemp(prefix="qmt-test-")))
    async with serve_worker(worker, sock) as wc:

        @asynccontextmanager
        async def deps() -> AsyncIterator[ServerDeps]:
            yield ServerDeps(wc)

        # Server and worker read one config, as `qmt-mcp serve` and its spawned worker do.
        server = build_server(deps, confirm_human, worker.service.cfg.approval)
        async with Client(server if transport is None else transport(server), **client_kw) as client:
            s = Session(client, worker, clock)
            s.server = server
            s.worker_sock = sock
            yield s


@pytest.fixture
async def session(cfg: Config, clock: ManualClock, tmp_path: Path) -> AsyncIterator[Session]:
    worker = make_worker(cfg, tmp_path / "home", clock)
    async with open_session(worker, clock) as s:
        yield s
    await worker.close()


SessionFactory = Callable[..., Any]


@pytest.fixture
def session_with(clock: ManualClock, tmp_path: Path) -> SessionFactory:
    """`async with session_with(risk={...}, accounts={...}) as s:` — a session on a custom config."""

    @asynccontextmanager
    async def make(**sections: Any) -> AsyncIterator[Session]:
        worker = make_worker(parse_config(sections), tmp_path / "custom", clock)
        try:
            async with open_session(worker, clock) as s:
                yield s
        finally:
            await worker.close()

    return make
