"""Read-only worker calls: market data, instruments, accounts and health."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..backends.port import BrokerPort, BrokerTrade
from ..calls import AccountArgs, InstrumentArgs, KlineArgs, NoArgs, QuoteArgs, SearchArgs, TickArgs, TradesArgs
from ..clock import Clock
from ..config import Config, mask_account_id
from ..domain.codes import normalize_code
from ..domain.errors import InvalidArgument, UnknownInstrument
from ..domain.sessions import ACCEPTS_CANCELS, ACCEPTS_ORDERS
from ..domain.timeutil import CN_TZ, cn_date, iso, parse_time
from .args import nonblank
from .history import day_range
from .lanes import LocalMarketData, ReadLane
from .service import WorkerService

EPOCH = datetime(1990, 12, 19, tzinfo=CN_TZ)  # the first A-share trading day


class Readers:
    def __init__(self, cfg: Config, broker: BrokerPort, clock: Clock, service: WorkerService, version: str) -> None:
        self.cfg = cfg
        self.broker = broker
        self.clock = clock
        self.service = service
        self.version = version
        # Long histories are slow to compute on the simulator: off the loop that serves orders (lanes.py).
        self.lane = ReadLane(cfg.worker.call_timeout_s)

    async def _known(self, raw: str) -> str:
        code = normalize_code(raw)
        await self.broker.instrument(code)  # raises UnknownInstrument
        return code

    async def get_quote(self, args: QuoteArgs) -> dict[str, Any]:
        canon = []
        unknown = []
        for raw in args.codes:
            code = normalize_code(raw)
            try:
                await self.broker.instrument(code)
            except UnknownInstrument:
                unknown.append(code)
            if code not in canon:
                canon.append(code)
        if unknown:
            raise UnknownInstrument(f"unknown instrument(s): {', '.join(unknown)}", details={"codes": unknown})
        return {"quotes": [q.to_wire() for q in await self.broker.quotes(canon)]}

    async def get_klines(self, args: KlineArgs) -> dict[str, Any]:
        code = await self._known(args.code)
        period, count, adjust = args.period, args.count, args.adjust
        start, end = self._range(args.start, args.end, EPOCH, self.clock.now())
        local = self.broker
        if isinstance(local, LocalMarketData):
            bars = await self.lane.run("get_klines", lambda: local.bar_list(code, period, start, end, count))
        else:
            bars = await self.broker.bars(code, period, start, end, count)
        return {"code": code, "period": period, "adjust": adjust, "bars": [b.to_wire() for b in bars]}

    def _range(
        self, given_start: str | None, given_end: str | None, start: datetime, end: datetime,
    ) -> tuple[datetime, datetime]:
        if given_start is not None:
            start = parse_time(given_start, "start")
        if given_end is not None:
            end = parse_time(given_end, "end")
            if len(given_end.strip()) == 8:
                end = end.replace(hour=23, minute=59, second=59)  # a date means the whole day
        if end < start:
            raise InvalidArgument("end is before start", details={"argument": "end"})
        return start, end

    async def get_ticks(self, args: TickArgs) -> dict[str, Any]:
        code = await self._known(args.code)
        start, end = self._range(args.start, args.end, EPOCH, self.clock.now())
        limit = args.limit
        local = self.broker
        if isinstance(local, LocalMarketData):
            ticks = await self.lane.run("get_ticks", lambda: local.tick_list(code, start, end, limit))
        else:
            ticks = await self.broker.ticks(code, start, end, limit)
        out = []
        for q in ticks:
            w = q.to_wire()
            out.append({k: w[k] for k in ("time", "last", "volume", "amount", "bid_prices", "bid_volumes",
                                          "ask_prices", "ask_volumes")})
        return {"code": code, "ticks": out}

    async def search_instruments(self, args: SearchArgs) -> dict[str, Any]:
        query = (nonblank(args.query, "query") or "").upper()
        sector = nonblank(args.sector, "sector")
        limit = args.limit
        if sector is not None and sector not in await self.broker.sectors():
            raise InvalidArgument(f"no sector named {sector!r}; list_sectors shows them",
                                  details={"argument": "sector"})
        out = []
        for item in await self.broker.listings():
            if sector is not None and sector not in item.sectors:
                continue
            digits = item.code.split(".")[0]
            bare = query.removeprefix("SH").removeprefix("SZ").removeprefix("BJ") if query[:2] in (
                "SH", "SZ", "BJ") and query[2:].isdigit() else query
            if query and not (item.code.startswith(bare) or digits.startswith(bare) or query in item.name.upper()):
                continue
            out.append({"code": item.code, "name": item.name, "board": item.board})
        return {"instruments": out[:limit]}

    async def get_instrument(self, args: InstrumentArgs) -> dict[str, Any]:
        code = normalize_code(args.code)
        return (await self.broker.instrument(code)).to_wire()

    async def list_sectors(self, args: NoArgs) -> dict[str, Any]:
        return {"sectors": await self.broker.sectors()}

    async def list_accounts(self, args: NoArgs) -> dict[str, Any]:
        return {"accounts": [
            {"name": n, "account_id": mask_account_id(a.account_id), "account_type": a.account_type, "live": a.live}
            for n, a in self.cfg.accounts.items()
        ]}

    async def get_asset(self, args: AccountArgs) -> dict[str, Any]:
        _, acct = self.service.account(args.account)
        return (await self.broker.asset(acct.account_id)).to_wire()

    async def get_positions(self, args: AccountArgs) -> dict[str, Any]:
        _, acct = self.service.account(args.account)
        return {"positions": [p.to_wire() for p in await self.broker.positions(acct.account_id)]}

    async def get_trades(self, args: TradesArgs) -> dict[str, Any]:
        name, acct = self.service.account(args.account)
        if args.start is None and args.end is None:
            return {"trades": self._named(name, await self.broker.trades(acct.account_id))}
        # Earlier days from the worker's journal (the broker lists today's only), today's from the broker.
        today = cn_date(self.clock.now())
        first, last = day_range(today, args.start, args.end)
        earlier = self.service.history.trade_rows(name, first, min(last, today - timedelta(days=1)))
        if not first <= today <= last:
            return {"trades": earlier}
        trades = [t for t in await self.broker.trades(acct.account_id) if cn_date(t.time) == today]
        return {"trades": [*earlier, *self._named(name, trades)]}

    def _named(self, name: str, trades: list[BrokerTrade]) -> list[dict[str, Any]]:
        # Named as the trade events name them: by the record each fill belongs to, never by a raw remark.
        cids = self.service.pushes.trade_client_ids(name, trades)
        return [t.to_wire(cid) for t, cid in zip(trades, cids, strict=True)]

    async def health(self, args: NoArgs) -> dict[str, Any]:
        now = self.clock.now()
        bh = self.broker.health()
        accounts: dict[str, Any] = {}
        for name, acct in self.cfg.accounts.items():
            state = self.service.risk.stored(name)
            tripped = state is not None and state.tripped
            captured = state is not None and state.baseline is not None and state.day == now.date()
            trader = bh.get("trader") or {"state": "alive", "last_connect_at": iso(self.service.started_at),
                                          "last_disconnect_at": None}
            accounts[name] = {
                "trader": trader,
                "risk_breaker": "tripped" if tripped else "ok",
                "baseline": "captured" if captured else "pending",
                "live": acct.live,
                "ready_to_trade": not tripped and trader["state"] == "alive",
            }
        phase = self.broker.phase()
        trader_state = (bh.get("trader") or {}).get("state", "alive")
        # State files moved aside at start, and order records set aside since (journal.py).
        quarantined = [*self.service.quarantined, *self.service.journal.quarantined]
        degraded = bool(bh.get("open_breakers")) or trader_state != "alive" or bool(quarantined)
        return {
            "market": {"clock": bh.get("clock", "exchange"), "phase": phase.value,
                       "accepts_orders": phase in ACCEPTS_ORDERS, "accepts_cancels": phase in ACCEPTS_CANCELS},
            "worker": {"state": "degraded" if degraded else "up", "backend": bh["backend"], "version": self.version,
                       "uptime_s": round((now - self.service.started_at).total_seconds(), 1),
                       "xtquant_loaded": bh["xtquant_loaded"], "restarts": 0,
                       "quarantined": quarantined, "journal": self.service.history.health()},
            "data": {"fresh": bh["fresh"], "stale_codes": bh["stale_codes"]},
            "accounts": accounts,
        }
