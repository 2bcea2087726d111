"""History across days: the worker's own record of each day, since xtquant answers for today only.

What is kept, in the journal (journal.py `history_days`, `history_folded`):

- the day's trades: the journal's trade events (and fills that matched no record, `unmatched`
  trade pushes), so orders placed by hand and imported as external count as well;
- two snapshots a day of each account (cash, holdings with the broker's cost, prices): its opening,
  taken at the first sight of the day (the first tick or call after the day roll, or after a
  restart: the day's fills so far are undone, domain/statement.py `opening_from`) and valued at the
  previous close; its closing, refreshed whenever a statement of today is asked for, and made final
  at the next day's first sight, at the day's close (its daily bar).

A restart on a day already opened changes nothing: the opening is kept. Days older than
`worker.retain_days` are folded: their statements (each code's figures and cost included) go into
`history_folded`, and their detail (snapshots, events, finished orders) is deleted, so the journal
stays bounded whatever the years of trading.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import anyio

from ..backends.port import BrokerPort
from ..calls import PnlArgs, StatementArgs
from ..clock import Clock
from ..config import Config
from ..domain.calendar import is_trading_day
from ..domain.codes import normalize_code
from ..domain.errors import ErrorCode, InvalidArgument, QmtError, UnknownAccount
from ..domain.fees import Fees
from ..domain.orders import EXTERNAL_PREFIX, Side
from ..domain.statement import (
    DayInput,
    DayStatement,
    Fill,
    Holding,
    Snapshot,
    opening_from,
    pnl_by_code,
    run_days,
    totals,
)
from ..domain.status import TERMINAL
from ..domain.timeutil import CN_TZ, cn_date, iso_ms, parse_time
from .journal import Journal

log = logging.getLogger("qmt_mcp.worker")
_TERMINAL = tuple(s.value for s in TERMINAL)
_DELETE_FINISHED = "DELETE FROM orders WHERE created_at<? AND status IN (" + ",".join("?" * len(_TERMINAL)) + ")"  # noqa: S608
_DATE_HINT = "Give dates as YYYYMMDD or YYYY-MM-DD (Asia/Shanghai), start on or before end; both default to today."


def day_range(today: date, start: str | None, end: str | None) -> tuple[date, date]:
    """The days a history call covers: `start` to `end`, each a date (a time names its day), each
    today when omitted. InvalidArgument, with a hint, for what is no date or a range backwards."""
    first = _day(start, "start") if start is not None else today
    last = _day(end, "end") if end is not None else today
    if last < first:
        raise InvalidArgument(f"end {last.isoformat()} is before start {first.isoformat()}", hint=_DATE_HINT,
                              details={"argument": "end"})
    return first, last


def _day(raw: str, argument: str) -> date:
    try:
        return cn_date(parse_time(raw, argument))
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, hint=_DATE_HINT, details={"argument": argument}) from None


def day_start(d: date) -> str:
    """The stamp (iso_ms) a day's records start at: records of `d` are >= it and < the next day's."""
    return iso_ms(datetime.combine(d, time(), CN_TZ))


def _dec(value: Any) -> Decimal:
    # The journal's events carry figures as JSON numbers: read back through their shortest repr, which
    # gives the decimal they were written from (prices to the li, money to the fen).
    return Decimal(str(value))


class History:
    def __init__(self, cfg: Config, broker: BrokerPort, journal: Journal, clock: Clock) -> None:
        self.cfg = cfg
        self.broker = broker
        self.journal = journal
        self.clock = clock
        self._seen: date | None = None
        self._lock = anyio.Lock()
        self._cache: dict[str, tuple[tuple[Any, ...], list[DayStatement]]] = {}   # account -> (key, closed days)

    def _today(self) -> date:
        return cn_date(self.clock.now())

    def _trading(self, d: date) -> bool:
        # The simulator's continuous clock trades every day; everything else keeps the exchange calendar.
        return self.broker.health().get("clock") == "continuous" or is_trading_day(d)

    def _account_id(self, name: str) -> str:
        acct = self.cfg.accounts.get(name)
        if acct is None:
            raise UnknownAccount(f"no account named {name!r}", details={"accounts": sorted(self.cfg.accounts)})
        return acct.account_id

    # ----- capture
    async def observe(self) -> None:
        """At the first sight of a day (each tick calls this; it is cheap once the day is seen): the
        previous day closed, today opened, and what is older than retain_days folded."""
        today = self._today()
        if self._seen == today:
            return
        async with self._lock:
            if self._seen == today:
                return
            try:
                if self._trading(today):
                    for name in self.cfg.accounts:
                        await self._open_day(name, today)
                self.fold(today)
            except QmtError as exc:
                # The broker may be away (TRADER_DISCONNECTED): the next tick tries again.
                log.info("history: day %s not opened yet: %s", today.isoformat(), exc.code.value)
                return
            self._seen = today

    async def _now(self, account_id: str) -> Snapshot:
        asset = await self.broker.asset(account_id)
        positions = [p for p in await self.broker.positions(account_id) if p.volume > 0]
        return Snapshot(asset.cash + asset.frozen_cash, {p.code: Holding(p.volume, p.cost) for p in positions},
                        {p.code: p.last_price for p in positions})

    async def _open_day(self, name: str, today: date) -> None:
        if self.journal.query("SELECT 1 FROM history_days WHERE account=? AND day=?", (name, today.isoformat())):
            return   # opened before (a restart the same day): the opening stays as it was
        now = await self._now(self._account_id(name))
        fills = self.fills(name, today, today).get(today, [])
        pre = {}
        for code in {*now.holdings, *(f.code for f in fills)}:
            try:
                pre[code] = (await self.broker.instrument(code)).pre_close
            except QmtError:   # a code the broker no longer lists: valued at its last price instead
                pre[code] = now.prices.get(code, Decimal(0))
        start = opening_from(now, fills, pre)
        writes: list[tuple[str, tuple[Any, ...]]] = []
        prev = self.journal.query("SELECT day FROM history_days WHERE account=? AND day<? AND final=0 "
                                  "ORDER BY day DESC LIMIT 1", (name, today.isoformat()))
        if prev:
            # The day before closed as the account opened today, at that day's close.
            day = date.fromisoformat(prev[0][0])
            prices = {c: await self._close(c, day) or start.prices.get(c, Decimal(0)) for c in start.holdings}
            closing = Snapshot(start.cash, start.holdings, prices)
            writes.append(("UPDATE history_days SET closing=?, final=1 WHERE account=? AND day=?",
                           (json.dumps(closing.to_wire()), name, day.isoformat())))
        writes.append(("INSERT OR IGNORE INTO history_days (account, day, opening, closing, final) VALUES (?,?,?,?,0)",
                       (name, today.isoformat(), json.dumps(start.to_wire()), json.dumps(now.to_wire()))))
        self.journal.execute_all(writes)

    async def _close(self, code: str, day: date) -> Decimal | None:
        """The closing price of `code` on `day` (its daily bar), None when the broker has none."""
        try:
            bars = await self.broker.bars(code, "1d", datetime.combine(day, time(), CN_TZ),
                                          datetime.combine(day, time(23, 59, 59), CN_TZ), 1)
        except QmtError:
            return None
        return bars[-1].close if bars and cn_date(bars[-1].time) == day else None

    async def refresh(self, name: str) -> None:
        """Today's closing as the account stands now (a statement of today shows the latest)."""
        account_id = self._account_id(name)
        await self.observe()
        today = self._today().isoformat()
        stored = self.journal.query("SELECT closing FROM history_days WHERE account=? AND day=? AND final=0",
                                    (name, today))
        if not stored:
            return
        now = json.dumps((await self._now(account_id)).to_wire())
        if now != stored[0][0]:   # written only when it moved: a statement asked twice costs one write
            self.journal.execute_all([("UPDATE history_days SET closing=? WHERE account=? AND day=? AND final=0",
                                       (now, name, today))])

    # ----- reading
    def fills(self, name: str, first: date, last: date) -> dict[date, list[Fill]]:
        """The account's fills from `first` to `last`, by day, in the order they were journaled."""
        out: dict[date, list[Fill]] = {}
        for trade in self.trade_rows(name, first, last):
            d = cn_date(datetime.fromisoformat(trade["time"]))
            out.setdefault(d, []).append(Fill(
                day=d, code=trade["code"], side=Side(trade["side"]), price=_dec(trade["price"]),
                volume=int(trade["volume"]), amount=_dec(trade["amount"]),
                fees=Fees(_dec(trade["commission"]), _dec(trade.get("stamp_duty", 0)),
                          _dec(trade.get("transfer_fee", 0)))))
        return out

    def trade_rows(self, name: str, first: date, last: date) -> list[dict[str, Any]]:
        """Trades of `first` to `last` as get_trades shows them, from the journal's events: each fill
        once (by day and trade_id), a fill that matched no record under `ext-<order id>`."""
        rows = self.journal.query(
            "SELECT seq, time, type, order_id, client_order_id, data FROM events WHERE account=? "
            "AND type IN ('trade', 'unmatched') AND time>=? AND time<? ORDER BY seq",
            (name, first.isoformat(), (last + timedelta(days=1)).isoformat()))
        seen: set[tuple[str, str]] = set()
        out = []
        for _, at, kind, order_id, cid, text in rows:
            data = json.loads(text)
            if kind == "unmatched" and data.get("push") != "trade":
                continue
            key = (at[:10], str(data.get("trade_id")))
            if key in seen:
                continue
            seen.add(key)
            out.append({"trade_id": data["trade_id"], "order_id": order_id,
                        "client_order_id": cid or f"{EXTERNAL_PREFIX}{order_id}", "code": data["code"],
                        "side": data["side"], "price": data["price"], "volume": data["volume"],
                        "amount": data["amount"], "commission": data["commission"],
                        "stamp_duty": data.get("stamp_duty", 0), "transfer_fee": data.get("transfer_fee", 0),
                        "fees": data.get("fees", data["commission"]), "fee_detail": data.get("fee_detail", "itemized"),
                        "time": at})
        return out

    def _inputs(self, name: str, rows: Sequence[tuple[Any, ...]]) -> list[DayInput]:
        if not rows:
            return []
        fills = self.fills(name, date.fromisoformat(rows[0][0]), date.fromisoformat(rows[-1][0]))
        out = []
        for day, opening, closing in rows:
            d = date.fromisoformat(day)
            out.append(DayInput(d, Snapshot.from_wire(json.loads(opening)), Snapshot.from_wire(json.loads(closing)),
                                tuple(fills.get(d, ()))))
        return out

    def statements(self, name: str, first: date, last: date) -> list[DayStatement]:
        """Every recorded day from `first` to `last`: folded ones as they were folded, the others
        computed from their snapshots and trades (the cost basis carried from the first).

        The days up to the last closed one are computed once and kept while nothing they are made
        of changes (the key counts their summaries, closings and trades, and the newest trade's seq);
        a call then computes only the days still open (today)."""
        days = self.journal.query("SELECT day, final FROM history_days WHERE account=? ORDER BY day", (name,))
        closed = 0
        while closed < len(days) and days[closed][1]:
            closed += 1
        end = (date.fromisoformat(days[closed - 1][0]) + timedelta(days=1)).isoformat() if closed else ""
        summary = self.journal.query("SELECT COUNT(*), MAX(day) FROM history_folded WHERE account=?", (name,))[0]
        trades = self.journal.query("SELECT COUNT(*), MAX(seq) FROM events WHERE account=? AND type IN "
                                    "('trade', 'unmatched') AND time<?", (name, end))[0]
        key = (tuple(summary), closed, end, tuple(trades))
        cached = self._cache.get(name)
        if cached is None or cached[0] != key:
            folded = [DayStatement.from_record(json.loads(t)) for (t,) in self.journal.query(
                "SELECT data FROM history_folded WHERE account=? ORDER BY day", (name,))]
            rows = self.journal.query("SELECT day, opening, closing FROM history_days WHERE account=? AND day<? "
                                      "ORDER BY day", (name, end))
            done = [*folded, *run_days(folded[-1] if folded else None, self._inputs(name, rows))]
            self._cache[name] = cached = (key, done)
        done = cached[1]
        rows = self.journal.query("SELECT day, opening, closing FROM history_days WHERE account=? AND day>=? "
                                  "ORDER BY day", (name, end))
        out = [*done, *run_days(done[-1] if done else None, self._inputs(name, rows))]
        return [d for d in out if first <= d.day <= last]

    # ----- the calls
    async def _refreshed(self, name: str, first: date, last: date) -> None:
        """Today's closing brought up to now when the range holds today; earlier days need no broker
        (they are answered while it is away)."""
        try:
            await self.refresh(name)
        except QmtError as exc:
            if exc.code is ErrorCode.UNKNOWN_ACCOUNT or first <= self._today() <= last:
                raise

    async def get_statement(self, args: StatementArgs) -> dict[str, Any]:
        first, last = day_range(self._today(), args.start, args.end)
        await self._refreshed(args.account, first, last)
        days = self.statements(args.account, first, last)
        return {"account": args.account, "start": first.isoformat(), "end": last.isoformat(),
                "days": [d.to_wire() for d in days], "totals": totals(days)}

    async def get_pnl(self, args: PnlArgs) -> dict[str, Any]:
        first, last = day_range(self._today(), args.start, args.end)
        await self._refreshed(args.account, first, last)
        code = None if args.code is None else normalize_code(args.code)
        days = self.statements(args.account, first, last)
        return {"account": args.account, "start": first.isoformat(), "end": last.isoformat(),
                "codes": pnl_by_code(days, code)}

    # ----- retention
    def fold(self, today: date) -> None:
        """Fold the days before today − retain_days into summaries, and delete their detail."""
        cutoff = (today - timedelta(days=self.cfg.worker.retain_days)).isoformat()
        writes: list[tuple[str, tuple[Any, ...]]] = []
        for (name,) in self.journal.query("SELECT DISTINCT account FROM history_days WHERE day<?", (cutoff,)):
            folded = self.journal.query("SELECT data FROM history_folded WHERE account=? ORDER BY day DESC LIMIT 1",
                                        (name,))
            prior = DayStatement.from_record(json.loads(folded[0][0])) if folded else None
            rows = self.journal.query("SELECT day, opening, closing FROM history_days WHERE account=? AND day<? "
                                      "ORDER BY day", (name, cutoff))
            for d in run_days(prior, self._inputs(name, rows)):
                writes.append(("INSERT OR REPLACE INTO history_folded (account, day, data) VALUES (?,?,?)",
                               (name, d.day.isoformat(), json.dumps(d.to_record()))))
            writes.append(("DELETE FROM history_days WHERE account=? AND day<?", (name, cutoff)))
        # The oldest event by seq (no index on time alone: this stays one row read, not a scan).
        oldest = self.journal.query("SELECT time FROM events ORDER BY seq LIMIT 1", ())
        if not writes and not (oldest and oldest[0][0] < cutoff):
            return
        # Detail older than the cutoff goes: its events and finished orders (an open one stays, whatever its age).
        writes.append(("DELETE FROM events WHERE time<?", (cutoff,)))
        writes.append((_DELETE_FINISHED, (day_start(date.fromisoformat(cutoff)), *_TERMINAL)))
        self.journal.execute_all(writes)
        log.info("history: folded the days before %s into summaries", cutoff)

    def health(self) -> dict[str, Any]:
        """The journal's size, and the oldest day held: in a summary, and with its detail."""
        oldest = self.journal.query("SELECT MIN(day) FROM (SELECT day FROM history_folded UNION ALL "
                                    "SELECT day FROM history_days)", ())[0][0]
        detail = self.journal.query("SELECT MIN(day) FROM history_days", ())[0][0]
        return {"size_bytes": self.journal.size_bytes(), "oldest_day": oldest, "oldest_detail_day": detail,
                "retain_days": self.cfg.worker.retain_days}
