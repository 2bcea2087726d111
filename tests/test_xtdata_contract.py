"""The data path's contract: the wheel's own xtdata.py (unmodified, from site-packages) over a stand-in
for its Windows-only `datacenter` library. What the adapter reads through the real xtdata must equal
what it reads from the simulator's xtdata functions directly."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from qmt_mcp.backends.sim.broker import SimBroker
from qmt_mcp.backends.sim.paper import PaperAccount
from qmt_mcp.backends.xtq import simdatacenter
from qmt_mcp.backends.xtq.simxtdata import SimXtData
from qmt_mcp.backends.xtq.xtdata_source import XtDataSource
from qmt_mcp.clock import ManualClock
from qmt_mcp.domain.fees import FeeSchedule
from qmt_mcp.domain.timeutil import CN_TZ

CODES = ["600000.SH", "688981.SH", "510300.SH", "688799.SH", "000029.SZ"]


@pytest.fixture
def real_xtdata() -> Iterator[tuple[Any, SimXtData, ManualClock]]:
    clock = ManualClock(datetime(2026, 11, 20, 10, 0, tzinfo=CN_TZ))
    sim = SimXtData(SimBroker(seed=42, clock=clock, fees=FeeSchedule(), state_path=None,
                              accounts={"A": PaperAccount(1_000_000)}))  # type: ignore[arg-type]
    from xtquant import xtbson
    names = ["xtquant.datacenter", "xtquant.xtdatacenter", "xtquant.xtconn", "xtquant.xtdata"]
    saved = {n: sys.modules.pop(n, None) for n in names}
    sys.modules["xtquant.datacenter"] = simdatacenter.module(xtbson)  # type: ignore[assignment]
    simdatacenter.Holder.source = sim
    try:
        from xtquant import xtdata
        xtdata.enable_hello = False
        xtdata.connect(port=58610)
        yield xtdata, sim, clock
    finally:
        simdatacenter.Holder.source = None
        for n in names:
            sys.modules.pop(n, None)
            if saved[n] is not None:
                sys.modules[n] = saved[n]  # type: ignore[assignment]
        import xtquant
        for attr in ("datacenter", "xtdatacenter", "xtconn", "xtdata"):
            xtquant.__dict__.pop(attr, None)


def test_quotes_instruments_and_sectors_read_the_same_through_the_real_xtdata(
    real_xtdata: tuple[Any, SimXtData, ManualClock],
) -> None:
    xtdata, sim, clock = real_xtdata
    through_wheel = XtDataSource(xtdata, clock, lambda: True)
    direct = XtDataSource(sim, clock, lambda: True)
    for _ in range(3):
        assert through_wheel.quotes(CODES) == direct.quotes(CODES)
        for code in CODES:
            assert through_wheel.instrument(code) == direct.instrument(code)
        clock.advance(3)
    assert through_wheel.sectors() == direct.sectors() and "科创板" in through_wheel.sectors()
    assert through_wheel.listings() == direct.listings()
    detail = xtdata.get_instrument_detail("688799.SH")
    assert detail["OpenDate"] == "20261116" and detail["UpStopPrice"] == 0   # a new listing: no limit
    assert through_wheel.instrument("688799.SH").up_limit is None
