"""A broker that injects faults around a real one (the simulator), for fault tests and rehearsals.

    broker = FaultInjectingBroker(sim)
    broker.script("place_order", "hang_after_send")   # the broker takes it, the answer never comes

Modes: "hang_before_send" (the call never reaches the broker and never returns), "hang_after_send"
(the broker takes it, its answer is lost), "lose_answer" (the broker takes it, and both its answer
and its pushes during the call are lost, as in a dropped connection), "fail" (raises the given
error). Each scripted fault applies to the next call of that method only.

`from_spec("place_order:lose_answer,cancel_order:fail")` builds the script from text (the
QMT_MCP_FAULTS environment variable of `qmt-mcp worker`, for fault rehearsals with real processes).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any, Literal

import anyio

from ..domain.errors import QmtError
from ..domain.orders import OrderRequest
from .port import BrokerEvent, BrokerPort, Sink, TradeFilled

Mode = Literal["hang_before_send", "hang_after_send", "lose_answer", "fail"]
MODES: tuple[Mode, ...] = ("hang_before_send", "hang_after_send", "lose_answer", "fail")


class FaultInjectingBroker:
    def __init__(self, inner: BrokerPort) -> None:
        self.inner = inner
        self.name = inner.name
        self._faults: dict[str, deque[tuple[Mode, QmtError | None]]] = defaultdict(deque)
        self.calls: dict[str, int] = defaultdict(int)
        self._sink: Sink | None = None
        self._muted = False
        self._holding = False
        self._held: list[BrokerEvent] = []
        self.trade_held = anyio.Event()

    @classmethod
    def from_spec(cls, inner: BrokerPort, spec: str) -> FaultInjectingBroker:
        broker = cls(inner)
        for item in filter(None, (part.strip() for part in spec.split(","))):
            method, _, mode = item.partition(":")
            if mode not in MODES:
                raise ValueError(f"unknown fault mode {mode!r} in {item!r}; use one of {', '.join(MODES)}")
            broker.script(method, mode)
        return broker

    def set_sink(self, sink: Sink) -> None:
        self._sink = sink
        self.inner.set_sink(self._forward)

    def _forward(self, events: Sequence[BrokerEvent]) -> None:
        if self._muted or self._sink is None:
            return
        if self._holding:
            self._held += [ev for ev in events if isinstance(ev, TradeFilled)]
            events = [ev for ev in events if not isinstance(ev, TradeFilled)]
            if self._held:
                self.trade_held.set()
        if events:
            self._sink(events)

    def hold_trades(self) -> None:
        """From now on trade pushes wait for `release_trades` while every other push goes through: a
        broker whose fill arrives after the order's final status, in a later batch (as xtquant's may)."""
        self._holding = True

    def release_trades(self) -> None:
        held, self._held, self._holding = self._held, [], False
        if held and self._sink is not None:
            self._sink(held)

    def script(self, method: str, mode: Mode, error: QmtError | None = None) -> None:
        self._faults[method].append((mode, error))

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    async def _run(self, method: str, *args: Any) -> Any:
        self.calls[method] += 1
        fault = self._faults[method].popleft() if self._faults[method] else None
        if fault is None:
            return await getattr(self.inner, method)(*args)
        mode, error = fault
        if mode == "fail":
            raise error or QmtError("injected failure")
        if mode == "hang_before_send":
            await anyio.sleep_forever()
        self._muted = mode == "lose_answer"
        try:
            await getattr(self.inner, method)(*args)  # the broker acts; its answer is lost
        finally:
            self._muted = False
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def place_order(self, account_id: str, req: OrderRequest, remark: str) -> int:
        result: int = await self._run("place_order", account_id, req, remark)
        return result

    async def cancel_order(self, account_id: str, order_id: int) -> None:
        await self._run("cancel_order", account_id, order_id)
