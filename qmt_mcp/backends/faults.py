"""A broker that injects faults around a real one (the simulator), for fault tests and rehearsals.

    broker = FaultInjectingBroker(sim)
    broker.script("place_order", "hang_after_send")   # the broker takes it, the answer never comes

Modes: "hang_before_send" (the call never reaches the broker and never returns), "hang_after_send"
(the broker takes it, the answer is lost), "fail" (raises the given error). Each scripted fault
applies to the next call of that method only.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any, Literal

import anyio

from ..domain.errors import QmtError
from ..domain.orders import OrderRequest
from .port import BrokerPort

Mode = Literal["hang_before_send", "hang_after_send", "fail"]


class FaultInjectingBroker:
    def __init__(self, inner: BrokerPort) -> None:
        self.inner = inner
        self.name = inner.name
        self._faults: dict[str, deque[tuple[Mode, QmtError | None]]] = defaultdict(deque)
        self.calls: dict[str, int] = defaultdict(int)

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
        result = await getattr(self.inner, method)(*args)
        del result  # the answer is lost on the way back
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def place_order(self, account_id: str, req: OrderRequest, remark: str) -> int:
        result: int = await self._run("place_order", account_id, req, remark)
        return result

    async def cancel_order(self, account_id: str, order_id: int) -> None:
        await self._run("cancel_order", account_id, order_id)
