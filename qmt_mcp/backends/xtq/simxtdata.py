"""xtdata's functions, with xtdata's shapes, over the simulator's market: what `XtDataSource` calls
beneath `[xtquant] native = "sim"`. Volumes are in lots and times in epoch ms, as xtdata reports them,
so the adapter's conversions are exercised. `freeze(code)` makes a code's timetag stop while its price
keeps moving (a wedged quote cache) for the stale-quote detector."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ...domain.errors import QmtError
from ...domain.market import Bar, Quote
from ...domain.timeutil import CN_TZ, parse_time
from ..sim.broker import SimBroker
from .constants import LOT, PHASE_STOCK_STATUS, STOCK_SUSPENDED


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class Frame:
    """Enough of a pandas DataFrame for a reader that asks for its records."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def to_dict(self, orient: str = "records") -> list[dict[str, Any]]:
        return list(self.rows)


class SimXtData:
    def __init__(self, broker: SimBroker) -> None:
        self.broker = broker
        self.frozen: dict[str, int] = {}   # code -> the timetag it is stuck at
        self._subs: dict[int, tuple[str, Callable[[dict[str, Any]], None]]] = {}
        self._sent: dict[int, dict[str, Any]] = {}
        self._next_seq = 0
        self.silent: set[str] = set()   # codes whose pushes stop (a wedged feed), for the detector

    def freeze(self, code: str) -> None:
        self.frozen[code] = _ms(self.broker.market.quote(code, self.broker.clock.now()).time)

    def _tick(self, q: Quote) -> dict[str, Any]:
        def lots(levels: Any) -> list[int]:
            return [lv.volume // LOT for lv in levels] + [0] * (5 - len(levels))

        def prices(levels: Any) -> list[float]:
            return [float(lv.price) for lv in levels] + [0.0] * (5 - len(levels))

        status = STOCK_SUSPENDED if q.status == "suspended" else PHASE_STOCK_STATUS[self.broker.phase()]
        return {"time": self.frozen.get(q.code, _ms(q.time)), "lastPrice": float(q.last), "open": float(q.open),
                "high": float(q.high), "low": float(q.low), "lastClose": float(q.pre_close), "amount": float(q.amount),
                "volume": q.volume // LOT, "pvolume": q.volume, "stockStatus": status,
                "askPrice": prices(q.asks), "bidPrice": prices(q.bids), "askVol": lots(q.asks),
                "bidVol": lots(q.bids)}

    def get_full_tick(self, code_list: list[str]) -> dict[str, Any]:
        out = {}
        for code in code_list:
            try:
                out[code] = self._tick(self.broker.market.quote(code, self.broker.clock.now()))
            except QmtError:
                continue   # xtdata leaves unknown codes out
        return out

    def subscribe_quote(self, stock_code: str, period: str = "1d", start_time: str = "", end_time: str = "",
                        count: int = 0, callback: Callable[[dict[str, Any]], None] | None = None) -> int:
        """xtdata's subscribe_quote for period 'tick': `callback({code: [tick]})` at each new tick,
        pushed by `pump` (the real xtdata pushes from its own thread)."""
        self._next_seq += 1
        if callback is not None:
            self._subs[self._next_seq] = (stock_code, callback)
        return self._next_seq

    def unsubscribe_quote(self, seq: int) -> None:
        self._subs.pop(seq, None)
        self._sent.pop(seq, None)

    def subscriptions(self) -> list[str]:
        return sorted(code for code, _ in self._subs.values())

    def pump(self) -> None:
        now = self.broker.clock.now()
        for seq, (code, callback) in list(self._subs.items()):
            if code in self.silent:
                continue
            try:
                tick = self._tick(self.broker.market.quote(code, now))
            except QmtError:
                continue
            if self._sent.get(seq) != tick:
                self._sent[seq] = tick
                callback({code: [tick]})

    def get_instrument_detail(self, stock_code: str, iscomplete: bool = False) -> dict[str, Any] | None:
        try:
            inst = self.broker.market.instrument(stock_code, self.broker.session_day())
        except QmtError:
            return None
        code, market = stock_code.split(".")
        return {"ExchangeID": market, "InstrumentID": code, "InstrumentName": inst.name,
                "OpenDate": inst.listed.strftime("%Y%m%d") if inst.listed else "19991110",
                "PreClose": float(inst.pre_close), "UpStopPrice": float(inst.up_limit or 0),
                "DownStopPrice": float(inst.down_limit or 0), "PriceTick": float(inst.price_tick),
                "VolumeMultiple": 1, "InstrumentStatus": 1 if inst.suspended else 0, "IsTrading": not inst.suspended,
                "TPlus": inst.t_plus}

    def download_history_data(self, stock_code: str, period: str, start_time: str = "", end_time: str = "",
                              incrementally: Any = None) -> None:
        return None   # the simulator has every day already

    def get_market_data_ex(self, field_list: list[str], stock_list: list[str], period: str = "1d",
                           start_time: str = "", end_time: str = "", count: int = -1, dividend_type: str = "none",
                           fill_data: bool = True) -> dict[str, Frame]:
        start = parse_time(start_time, "start_time") if start_time else datetime(2024, 1, 1, tzinfo=CN_TZ)
        end = parse_time(end_time, "end_time") if end_time else self.broker.clock.now()
        if len(end_time) == 8:
            end = end.replace(hour=23, minute=59, second=59)
        n = count if count and count > 0 else 100_000
        out: dict[str, Frame] = {}
        for code in stock_list:
            if period == "tick":
                ticks = self.broker.market.ticks(code, start, min(end, self.broker.clock.now()), n)
                out[code] = Frame([self._tick(q) for q in ticks])
                continue
            bars = self._bars(code, period, start, end, n)
            out[code] = Frame([{"time": _ms(b.time), "open": float(b.open), "high": float(b.high),
                                "low": float(b.low), "close": float(b.close), "volume": b.volume // LOT,
                                "amount": float(b.amount), "suspendFlag": 0} for b in bars])
        return out

    def _bars(self, code: str, period: str, start: datetime, end: datetime, count: int) -> list[Bar]:
        return self.broker.bar_list(code, period, start, end, count)

    def get_sector_list(self) -> list[str]:
        return self.broker.market.sector_names()

    def get_stock_list_in_sector(self, sector_name: str, real_timetag: int = -1) -> list[str]:
        day = self.broker.session_day()
        return [c for c, item in self.broker.market.listings.items()
                if sector_name in item.sectors and (item.listed is None or item.listed <= day)]
