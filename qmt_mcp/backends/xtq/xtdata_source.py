"""Market data through xtdata's API (`get_full_tick`, `download_history_data` + `get_market_data_ex`,
`get_instrument_detail`, sectors), translated at this boundary: volumes from lots to shares, prices
from floats, epoch-ms times, and a stale-quote detector.

`xtdata` is the wheel's module on a real miniQMT, or `SimXtData` (the same functions and shapes over the
simulator) beneath `[xtquant] native = "sim"`: xtdata.py itself needs the Windows-only `datacenter`
library, so the stand-in sits at xtdata's function boundary rather than beneath it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ...clock import Clock
from ...domain.codes import board_of, exchange_of
from ...domain.errors import ErrorCode, Unavailable, UnknownInstrument
from ...domain.instruments import LOT_RULES, Instrument, price_tick
from ...domain.market import Bar, Level, Quote
from ...domain.text import clean_text
from ...domain.timeutil import CN_TZ
from ..port import Listed
from .constants import LOT, STOCK_STATUS, STOCK_TRADING

log = logging.getLogger("qmt_mcp.xtquant")
STALE_AFTER = timedelta(seconds=60)   # no new quote for this long in the continuous auction: stale


def _px(x: Any) -> Decimal:
    return Decimal(str(round(float(x or 0), 3)))


def _ms(t: Any) -> datetime:
    return datetime.fromtimestamp(int(t) / 1000, CN_TZ)


def _stamp(at: datetime, daily: bool) -> str:
    return at.astimezone(CN_TZ).strftime("%Y%m%d" if daily else "%Y%m%d%H%M%S")


class XtDataSource:
    def __init__(self, xtdata: Any, clock: Clock, trading: Any) -> None:
        """`trading()` says whether the continuous auction is on now (for the no-update check)."""
        self.xtdata = xtdata
        self.clock = clock
        self.trading = trading
        self._last: dict[str, tuple[int, Decimal]] = {}   # code -> (timetag, last price) seen last
        self.stale: set[str] = set()
        self._instruments: dict[tuple[str, date], Instrument] = {}
        self._subs: dict[str, int] = {}              # code -> subscribe_quote's seq
        self._ticks: dict[str, dict[str, Any]] = {}  # code -> the last tick it pushed
        self._sink: Callable[[Quote], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----- quotes
    def quotes(self, codes: list[str]) -> list[Quote]:
        ticks = self.xtdata.get_full_tick(codes) or {}
        out = []
        for code in codes:
            tick = ticks.get(code)
            if not tick:
                raise UnknownInstrument(f"xtdata has no quote for {code}")
            stale = self._check_stale(code, int(tick.get("time", 0)), _px(tick.get("lastPrice")))
            out.append(self._quote(code, tick, stale))
        return out

    def _quote(self, code: str, t: dict[str, Any], stale: bool) -> Quote:
        inst = self.instrument(code)
        timetag = int(t.get("time", 0))
        last = _px(t.get("lastPrice"))
        bids = tuple(Level(_px(p), int(v) * LOT) for p, v in zip(t.get("bidPrice", []), t.get("bidVol", []),
                                                                  strict=False) if float(p or 0) > 0)
        asks = tuple(Level(_px(p), int(v) * LOT) for p, v in zip(t.get("askPrice", []), t.get("askVol", []),
                                                                  strict=False) if float(p or 0) > 0)
        volume = int(t["pvolume"]) if t.get("pvolume") is not None else int(t.get("volume", 0)) * LOT
        return Quote(
            code=code, name=inst.name, time=_ms(timetag), last=last, open=_px(t.get("open")), high=_px(t.get("high")),
            low=_px(t.get("low")), pre_close=_px(t.get("lastClose")), volume=volume,
            amount=Decimal(str(round(float(t.get("amount", 0)), 2))), bids=bids, asks=asks,
            up_limit=inst.up_limit, down_limit=inst.down_limit,
            status=STOCK_STATUS.get(int(t.get("stockStatus", STOCK_TRADING)), "trading"), stale=stale,
        )

    def _check_stale(self, code: str, timetag: int, last: Decimal) -> bool:
        """A code is stale when its timetag stops while its price moves (a wedged quote cache), or when
        no quote has come for a while in the continuous auction."""
        before = self._last.get(code)
        self._last[code] = (timetag, last)
        frozen = before is not None and before[0] == timetag and before[1] != last
        silent = self.trading() and self.clock.now() - _ms(timetag) > STALE_AFTER
        if frozen or silent:
            self.stale.add(code)
        else:
            self.stale.discard(code)
        return frozen or silent

    # ----- pushed quotes (subscribe_quote), for the worker's quote streams
    def watch(self, codes: frozenset[str], sink: Callable[[Quote], None]) -> None:
        """Subscribe the codes not yet subscribed and unsubscribe the others; each new tick becomes a
        Quote handed to `sink` on this (the calling) event loop. Called on the event loop: xtdata's
        subscribe is a quick call to the local client, not a wait for the market."""
        self._loop = asyncio.get_running_loop()
        self._sink = sink
        for code in sorted(set(self._subs) - codes):
            seq = self._subs.pop(code)
            self._ticks.pop(code, None)
            try:
                self.xtdata.unsubscribe_quote(seq)
            except Exception as exc:   # xtdata raises plain exceptions; nothing to undo here
                log.warning("unsubscribe_quote(%s) failed: %r", code, exc)
        for code in sorted(codes - set(self._subs)):
            try:
                self._subs[code] = int(self.xtdata.subscribe_quote(
                    code, period="tick", count=0, callback=lambda datas, c=code: self._pushed(c, datas)))
            except Exception as exc:
                log.warning("subscribe_quote(%s) failed: %r; its quotes are read on demand only", code, exc)

    def _pushed(self, code: str, datas: Any) -> None:
        """xtdata's callback, on xtdata's thread: {code: [tick, ...]} (or {code: tick}); only the newest counts."""
        ticks = (datas or {}).get(code) if isinstance(datas, dict) else None
        tick = ticks[-1] if isinstance(ticks, list) and ticks else ticks
        if isinstance(tick, dict) and self._loop is not None:
            self._loop.call_soon_threadsafe(self._deliver, code, tick)

    def _deliver(self, code: str, tick: dict[str, Any]) -> None:
        if code not in self._subs or self._sink is None:
            return   # unsubscribed while the push was on its way
        self._ticks[code] = tick
        try:
            stale = self._check_stale(code, int(tick.get("time", 0)), _px(tick.get("lastPrice")))
            self._sink(self._quote(code, tick, stale))
        except Exception:
            log.exception("a pushed tick of %s could not be read", code)

    def check_silent(self) -> None:
        """The detector's second half for pushed codes: one that has stopped pushing while the
        continuous auction is on is pushed again, marked stale (a wedged feed pushes nothing at all)."""
        if self._sink is None or not self.trading():
            return
        now = self.clock.now()
        for code, tick in list(self._ticks.items()):
            if code not in self.stale and now - _ms(int(tick.get("time", 0))) > STALE_AFTER:
                self.stale.add(code)
                self._sink(self._quote(code, tick, True))

    def pump(self) -> None:
        """Let a stand-in xtdata push its ticks (the simulator's; the real one pushes on its own thread)."""
        pump = getattr(self.xtdata, "pump", None)
        if pump is not None:
            pump()

    # ----- instruments
    def instrument(self, code: str) -> Instrument:
        """Instrument details change once a trading day (limits, previous close); every quote needs
        them, so they are read from xtdata once per code and day."""
        key = (code, self.clock.now().astimezone(CN_TZ).date())
        cached = self._instruments.get(key)
        if cached is None:
            if len(self._instruments) > 10_000:
                self._instruments.clear()
            cached = self._instruments[key] = self._read_instrument(code)
        return cached

    def _read_instrument(self, code: str) -> Instrument:
        d = self.xtdata.get_instrument_detail(code)
        if not d:
            raise UnknownInstrument(f"xtdata has no instrument {code}")
        board = board_of(code)
        up, down = float(d.get("UpStopPrice") or 0), float(d.get("DownStopPrice") or 0)
        tick = _px(d.get("PriceTick")) or price_tick(board)
        name = clean_text(str(d.get("InstrumentName", "")))
        opened = str(d.get("OpenDate") or "")
        return Instrument(
            code=code, name=name, exchange=exchange_of(code), board=board, pre_close=_px(d.get("PreClose")),
            up_limit=_px(up) if up > 0 else None, down_limit=_px(down) if down > 0 else None, price_tick=tick,
            lot=LOT_RULES[board], st="ST" in name.upper(), suspended=int(d.get("InstrumentStatus") or 0) > 0,
            t_plus=0 if d.get("TPlus") == 0 else 1,   # not an xtdata field: only the simulator sets it
            listed=date(int(opened[:4]), int(opened[4:6]), int(opened[6:])) if len(opened) == 8 and opened.isdigit()
            else None,
        )

    # ----- bars and ticks
    def bars(self, code: str, period: str, start: datetime, end: datetime, count: int) -> list[Bar]:
        daily = period in ("1d", "1w")
        s, e = _stamp(start, daily), _stamp(end, daily)
        self.xtdata.download_history_data(code, period, s, e)
        frame = (self.xtdata.get_market_data_ex([], [code], period, s, e, count, "none", True) or {}).get(code)
        if frame is None:
            raise Unavailable(f"xtdata returned no {period} bars for {code}", code=ErrorCode.TIMEOUT)
        return [Bar(_ms(r["time"]), _px(r["open"]), _px(r["high"]), _px(r["low"]), _px(r["close"]),
                    int(r["volume"]) * LOT, Decimal(str(round(float(r["amount"]), 2))))
                for r in frame.to_dict("records")][-count:]

    def ticks(self, code: str, start: datetime, end: datetime, limit: int) -> list[Quote]:
        frame = (self.xtdata.get_market_data_ex([], [code], "tick", _stamp(start, False), _stamp(end, False),
                                                limit, "none", True) or {}).get(code)
        rows = [] if frame is None else frame.to_dict("records")
        # Historical ticks are not the live feed: they never touch the stale-quote detector.
        return [self._quote(code, r, False) for r in rows[:limit]]

    # ----- lists
    def sectors(self) -> list[str]:
        return [str(s) for s in self.xtdata.get_sector_list() or []]

    def listings(self) -> list[Listed]:
        members: dict[str, list[str]] = {}
        for sector in self.sectors():
            for code in self.xtdata.get_stock_list_in_sector(sector) or []:
                members.setdefault(str(code), []).append(sector)
        out = []
        for code, sectors in sorted(members.items()):
            name = clean_text(str((self.xtdata.get_instrument_detail(code) or {}).get("InstrumentName", "")))
            out.append(Listed(code, name, board_of(code).value, tuple(sectors)))
        return out
