"""The one place that wires the parts together: config → broker → journal → service → API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp

from . import __version__
from .backends.port import BrokerPort
from .backends.sim.broker import SimBroker
from .backends.sim.paper import PaperAccount
from .backends.sim.replay import ReplayError, ReplaySeries, load_replay_dir
from .backends.sim.universe import UNIVERSE
from .backends.xtq.adapter import XtQuantBroker
from .backends.xtq.loader import load_xtdata
from .backends.xtq.simnative import SimNative
from .backends.xtq.simxtdata import SimXtData
from .backends.xtq.xtdata_source import XtDataSource
from .clock import Clock, IdSource, RandomIds, ShiftedClock, SystemClock
from .config import Config, ConfigError
from .config_digest import section_digests
from .domain.sessions import Phase, phase_at
from .domain.timeutil import iso
from .statedir import private_dir
from .worker.api import Handler, build_app
from .worker.audit import AuditLog
from .worker.audit_status import AuditStatus
from .worker.confirm import ConfirmTokens, load_secret
from .worker.journal import Journal
from .worker.leases import CHECK_S, Leases
from .worker.operator import OperatorCalls, load_operator_key
from .worker.readers import Readers
from .worker.reconcile import Reconciler
from .worker.risk_calls import RiskCalls
from .worker.service import WorkerService
from .worker.statefiles import Quarantined, check_state_dir
from .worker.stream import event_frames

log = logging.getLogger("qmt_mcp.worker")

UNIVERSE_CODES = frozenset(item.code for item in UNIVERSE)
APPROVAL_CHECK_S = 1.0   # how often undecided approvals are checked for expiry (seconds)


@dataclass
class Worker:
    service: WorkerService
    readers: Readers
    broker: BrokerPort
    journal: Journal
    audit: AuditLog
    reconciler: Reconciler
    leases: Leases
    operator_key: str   # operator.key: what the person's CLI and console call the operator calls with

    def handlers(self) -> dict[str, Handler]:
        s, r, k, o = self.service, self.readers, RiskCalls(self.service), OperatorCalls(self.service)
        return {
            "health": r.health, "list_accounts": r.list_accounts, "get_quote": r.get_quote,
            "get_klines": r.get_klines, "get_ticks": r.get_ticks, "search_instruments": r.search_instruments,
            "get_instrument": r.get_instrument, "list_sectors": r.list_sectors, "get_asset": r.get_asset,
            "get_positions": r.get_positions, "get_orders": s.get_orders, "get_trades": r.get_trades,
            "get_order": s.get_order, "preview_order": s.preview_order, "place_order": s.place_order,
            "cancel_order": s.cancel_order, "get_risk_status": k.get_risk_status, "reset_risk": k.reset_risk,
            "check_order": s.check_order, "check_reset": k.check_reset, "get_order_events": s.get_order_events,
            "latest_events": s.latest_events, "note_gap": s.note_gap,
            "lease": self.leases.lease, "release": self.leases.release,
            "set_kill_switch": o.set_kill_switch, "set_blocked_code": o.set_blocked_code,
            "operator_reset_risk": o.operator_reset_risk,
            "list_approvals": s.approvals.list_approvals, "decide_approval": s.approvals.decide_approval,
            "audit_status": AuditStatus(self.audit, self.journal).audit_status,
            "get_statement": s.history.get_statement, "get_pnl": s.history.get_pnl,
            "place_conditional_order": s.conditions.place_conditional_order,
            "list_conditional_orders": s.conditions.list_conditional_orders,
            "cancel_conditional_order": s.conditions.cancel_conditional_order,
            "watch_quotes": s.quotes.watch_quotes,
        }

    def app(self, token: str, background: bool = True) -> ASGIApp:
        """The HTTP API. With `background`, it reconciles at start and on a timer, and lets
        simulated time pass (resting orders meet new quotes); tests drive those by hand instead."""
        cfg = self.service.cfg

        def audit(record: dict[str, object]) -> None:
            self.audit.append({"time": iso(self.service.clock.now()), **record})

        async def connect() -> None:
            await self.broker.start()

        async def at_start() -> None:
            await self.broker.start()
            await self.reconciler.run("start")

        async def on_timer() -> None:
            await self.reconciler.run("timer")

        async def tick() -> None:
            await self.service.tick()
            sent, self.service.conditions.watcher.sent = self.service.conditions.watcher.sent, []
            for record in sent:   # the orders conditions sent this round: on the trail like any order
                try:
                    audit(record)
                except OSError:   # as for a call's record (worker/api.py): the order stands, journaled
                    log.exception("audit entry for a condition's order not written")
            if self.broker.take_reconnected():
                await self.reconciler.run("reconnect")

        async def expire_approvals() -> None:
            # Nobody called for these: the trail records the expiry itself, so it shows every decision.
            for approval_id in await self.service.approvals.expire():
                audit({"call": "approval_expired", "args": {"approval_id": approval_id},
                       "outcome": {"ok": True, "decision": "expired"}, "by": {"operator": False, "channel": "timer"}})

        def stream(after: int) -> AsyncIterator[bytes]:
            return event_frames(self.journal, after, self.service.next_change, cfg.worker.heartbeat_s)

        def quote_stream(watcher: str) -> AsyncIterator[bytes]:
            return self.service.quotes.frames(watcher, cfg.worker.heartbeat_s)

        key = self.operator_key
        if not background:
            return build_app(self.handlers(), token, startup=connect, audit=audit, stream=stream, operator_key=key,
                             quote_stream=quote_stream)
        periodic = [(tick, cfg.sim.poll_interval_s), (on_timer, cfg.worker.reconcile_interval_s),
                    (self.leases.check, CHECK_S), (expire_approvals, APPROVAL_CHECK_S)]
        return build_app(self.handlers(), token, startup=at_start, periodic=periodic, audit=audit, stream=stream,
                         operator_key=key, quote_stream=quote_stream)

    async def close(self) -> None:
        self.readers.lane.close()
        await self.broker.close()
        self.audit.close()
        self.journal.close()


def build_worker(
    cfg: Config, home: Path | None, clock: Clock | None = None, ids: IdSource | None = None,
    wrap: Callable[[BrokerPort], BrokerPort] | None = None,
) -> Worker:
    """A worker over `home` (None: everything in memory). `wrap` puts a layer around the broker
    (the fault injector in fault tests)."""
    if home is not None:
        private_dir(home)   # 0700, and what is in it 0600, before anything is opened there
    if cfg.worker.backend == "xtquant" and cfg.xtquant.native == "real":
        return _real_xtquant_worker(cfg, home, clock or SystemClock(), ids, wrap)   # real time, always
    if clock is None:
        clock = ShiftedClock(cfg.sim.start_at, cfg.sim.speed) if cfg.sim.start_at else SystemClock()
    accounts = {
        a.account_id: PaperAccount(a.initial_cash or cfg.sim.initial_cash, dict(a.positions))
        for a in cfg.accounts.values()
    }
    replay = _load_replay(cfg)
    quarantined = check_state_dir(home, clock.now(), sim_book=True)
    for name, a in cfg.accounts.items():
        unknown = [c for c in a.positions if c not in UNIVERSE_CODES and c not in replay]
        if unknown:
            raise ConfigError(f"'accounts.{name}.positions': not in the simulated universe: {', '.join(unknown)}")
    broker = SimBroker(
        seed=cfg.sim.seed, clock=clock, fees=cfg.sim.fee_schedule(), accounts=accounts,
        state_path=None if home is None else home / "sim.sqlite", clock_mode=cfg.sim.clock, replay=replay,
    )
    inner: BrokerPort = broker
    if cfg.worker.backend == "xtquant":
        # xtquant's own Python layer (the real wheel) over the simulated native layer.
        native = SimNative(broker)
        data = XtDataSource(SimXtData(broker), clock, lambda: broker.phase() is Phase.CONTINUOUS)
        inner = XtQuantBroker(cfg, clock, data, broker.phase, native.register(), native=native,
                              clock_name=cfg.sim.clock)
    return _assemble(cfg, home, clock, ids, inner if wrap is None else wrap(inner), quarantined)


def _assemble(
    cfg: Config, home: Path | None, clock: Clock, ids: IdSource | None, port: BrokerPort,
    quarantined: list[Quarantined],
) -> Worker:
    journal = Journal(None if home is None else home / "worker.sqlite")
    tokens = ConfirmTokens(load_secret(None if home is None else home / "confirm.key"), cfg.confirm.ttl_s,
                           clock.wall)
    service = WorkerService(cfg, port, journal, tokens, clock, ids or RandomIds())
    service.quarantined = [q.to_wire() for q in quarantined]
    readers = Readers(cfg, port, clock, service, __version__)
    # Anchored in the journal: a trail cut short is caught at start (AuditTrailBroken), see audit.py.
    audit = AuditLog(None if home is None else home / "audit.jsonl", anchor=journal)
    audit.start_flusher()   # a call's answer does not wait for the trail's fsync (see audit.py)
    # Made here if missing, so the CLI on this machine finds it once a worker has started.
    key = load_operator_key(home)
    return Worker(service, readers, port, journal, audit, Reconciler(service), Leases(section_digests(cfg)), key)


def _real_xtquant_worker(
    cfg: Config, home: Path | None, clock: Clock, ids: IdSource | None,
    wrap: Callable[[BrokerPort], BrokerPort] | None,
) -> Worker:
    """The worker on the Windows host next to miniQMT: xttrader and xtdata from the wheel."""
    if not cfg.xtquant.qmt_path:
        raise ConfigError("'xtquant.qmt_path': set the miniQMT userdata_mini folder, e.g. 'C:\\QMT\\userdata_mini'")
    try:
        xtdata = load_xtdata()
    except RuntimeError as exc:
        raise ConfigError(f"'xtquant.native': {exc}") from None
    data = XtDataSource(xtdata, clock, lambda: phase_at(clock.now()) is Phase.CONTINUOUS)
    broker: BrokerPort = XtQuantBroker(cfg, clock, data, lambda: phase_at(clock.now()), cfg.xtquant.qmt_path)
    quarantined = check_state_dir(home, clock.now(), sim_book=False)
    return _assemble(cfg, home, clock, ids, broker if wrap is None else wrap(broker), quarantined)


def _load_replay(cfg: Config) -> dict[str, ReplaySeries]:
    if not cfg.sim.replay_dir:
        return {}
    try:
        return load_replay_dir(Path(cfg.sim.replay_dir).expanduser())
    except ReplayError as exc:
        raise ConfigError(f"'sim.replay_dir': {exc}") from None
