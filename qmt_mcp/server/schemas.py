"""Output schemas: every tool's result is an envelope that an error result also satisfies.

{"ok": true, ...payload} or {"ok": false, "error": {...}}. All payload fields are optional so a
TypeScript client (the MCP Inspector) that validates error results against outputSchema accepts them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ..domain.errors import ErrorCode


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorInfo(_Out):
    code: ErrorCode
    message: str
    hint: str = ""
    retryable: bool = False
    state_changed: Literal["no", "yes", "unknown"] = "no"
    details: dict[str, Any] = Field(default_factory=dict)


class Envelope(_Out):
    ok: bool
    error: ErrorInfo | None = None


# ----- health and accounts
class TraderState(_Out):
    state: Literal["never_connected", "alive", "lost"]
    last_connect_at: str | None = None
    last_disconnect_at: str | None = None


class AccountHealth(_Out):
    trader: TraderState
    risk_breaker: Literal["ok", "tripped"]
    baseline: Literal["captured", "pending"]
    live: bool
    ready_to_trade: bool


class JournalHealth(_Out):
    size_bytes: int = Field(description="the worker journal's size on disk, bytes")
    oldest_day: str | None = Field(None, description="the oldest day get_statement can show (YYYY-MM-DD)")
    oldest_detail_day: str | None = Field(
        None, description="the oldest day whose orders and trades are still held; earlier ones are folded")
    retain_days: int = Field(description="worker.retain_days: days of detail kept")


class WorkerHealth(_Out):
    state: Literal["up", "degraded", "down"]
    backend: Literal["sim", "xtquant"]
    version: str
    uptime_s: float
    xtquant_loaded: bool
    restarts: int
    quarantined: list[dict[str, str]] = Field(
        default_factory=list, description="state files found corrupt at start and moved aside")
    journal: JournalHealth | None = None


class DataHealth(_Out):
    fresh: bool
    stale_codes: list[str]


class EventsHealth(_Out):
    connected: bool = Field(description="the server follows the worker's event stream")
    last_seq: int
    gaps: int = Field(description="times the worker's journal was not the one followed before")


class MarketHealth(_Out):
    clock: str = Field(description="exchange (real sessions, Asia/Shanghai) or continuous (always trading; sim)")
    phase: str = Field(description="closed, opening_auction, opening_auction_no_cancel, pre_open_hold, "
                       "continuous, lunch_break or closing_auction")
    accepts_orders: bool
    accepts_cancels: bool


class HealthResult(Envelope):
    market: MarketHealth | None = None
    events: EventsHealth | None = None
    worker: WorkerHealth | None = None
    data: DataHealth | None = None
    accounts: dict[str, AccountHealth] | None = None


class AccountInfo(_Out):
    name: str
    account_id: str = Field(description="masked, e.g. ****0001")
    account_type: str
    live: bool


class ListAccountsResult(Envelope):
    accounts: list[AccountInfo] | None = None


# ----- market data
class QuoteOut(_Out):
    code: str
    name: str
    time: str
    last: float
    open: float
    high: float
    low: float
    pre_close: float
    volume: int = Field(description="shares traded today")
    amount: float = Field(description="yuan traded today")
    bid_prices: list[float]
    bid_volumes: list[int]
    ask_prices: list[float]
    ask_volumes: list[int]
    up_limit: float | None = Field(description="null: no daily limit today (a new listing's first days)")
    down_limit: float | None
    status: str = Field(description="trading, suspended, or the session phase: pre_open, opening_auction, "
                        "lunch_break, closing_auction, closed")
    stale: bool
    age_ms: int | None = Field(None, description="ms since the server got this quote: 0 when read from the worker "
                               "for this call; more when held for a subscription to qmt://quotes/{code}")


class GetQuoteResult(Envelope):
    quotes: list[QuoteOut] | None = None


class BarOut(_Out):
    time: str = Field(description="bar start, +08:00")
    open: float
    high: float
    low: float
    close: float
    volume: int = Field(description="shares")
    amount: float = Field(description="yuan")


# Bars come by the hundred and up to 5,000 a call. A client that checks each result against the
# output schema (the Python SDK's Client does, with jsonschema) pays about 5 µs per typed field per
# bar: 2.4 ms of a 60-bar call, a quarter of a second for 5,000 bars. So a bar's schema pins its
# seven keys (all required, no others) and gives their types in words; BarOut still checks every
# field's type before the server answers.
_BAR_FIELDS = tuple(BarOut.model_fields)
_BARS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": list(_BAR_FIELDS),
        "maxProperties": len(_BAR_FIELDS),
        "description": "time: string, bar start (+08:00); open, high, low, close: number (yuan); "
        "volume: integer (shares); amount: number (yuan)",
    },
}


class GetKlinesResult(Envelope):
    code: str | None = None
    period: str | None = None
    adjust: str | None = None
    bars: Annotated[list[BarOut], WithJsonSchema(_BARS_SCHEMA)] | None = None


class TickOut(_Out):
    time: str
    last: float
    volume: int
    amount: float
    bid_prices: list[float]
    bid_volumes: list[int]
    ask_prices: list[float]
    ask_volumes: list[int]


class GetTicksResult(Envelope):
    code: str | None = None
    ticks: list[TickOut] | None = None


class InstrumentBrief(_Out):
    code: str
    name: str
    board: str


class SearchResult(Envelope):
    instruments: list[InstrumentBrief] | None = None


class InstrumentResult(Envelope):
    code: str | None = None
    name: str | None = None
    exchange: str | None = None
    board: str | None = None
    buy_lot_min: int | None = None
    buy_lot_step: int | None = None
    price_tick: float | None = None
    pre_close: float | None = None
    up_limit: float | None = None
    down_limit: float | None = None
    st: bool | None = None
    suspended: bool | None = None
    t_plus: int | None = None
    price_limited: bool | None = Field(None, description="false: no daily limit today (a new listing's first "
                                       "days); up_limit and down_limit are then absent")
    listed: str | None = Field(None, description="listing date, when known (YYYY-MM-DD)")


class SectorsResult(Envelope):
    sectors: list[str] | None = None


# ----- account state
class AssetResult(Envelope):
    cash: float | None = Field(None, description="available cash, yuan")
    frozen_cash: float | None = None
    market_value: float | None = None
    total_asset: float | None = None


class PositionOut(_Out):
    code: str
    name: str
    volume: int = Field(description="shares held")
    can_use_volume: int = Field(description="shares sellable now (today's buys sell from T+1)")
    avg_price: float = Field(description="average fill price of the shares held, yuan per share, fees excluded "
                                         "(to 0.001)")
    cost_price: float | None = Field(None, description="average cost of the shares held, yuan per share, buy fees "
                                                       "included (成本价, as A-share brokers report it; to 0.001)")
    last_price: float = Field(description="yuan per share")
    market_value: float = Field(description="last_price x volume, yuan")
    cost_basis: float | None = Field(None, description="what the shares held cost, buy fees included, yuan, exact "
                                                       "to the fen (cost_price is this / volume)")
    unrealized_pnl: float = Field(description="market_value - cost_basis, yuan: buy fees count as cost, the fees of "
                                              "a future sell do not; computed from the exact cost, rounded once")


class PositionsResult(Envelope):
    positions: list[PositionOut] | None = None


class ApprovalOut(_Out):
    approval_id: str
    expires_at: str
    channels: list[str]
    hint: str = Field(description="where a person decides")


class OrderOut(_Out):
    order_id: int | None
    client_order_id: str
    code: str
    name: str
    side: Literal["buy", "sell"]
    order_type: Literal["limit", "market"]
    price_type: int = Field(description="xtquant price type")
    price: float
    volume: int
    traded_volume: int
    traded_price: float
    status: str
    status_msg: str
    time: str
    live: bool
    approval: ApprovalOut | None = Field(None, description="set when the order waits (or waited) for a person")


class OrdersResult(Envelope):
    orders: list[OrderOut] | None = None


class TradeOut(_Out):
    trade_id: str
    order_id: int
    client_order_id: str
    code: str
    side: Literal["buy", "sell"]
    price: float = Field(description="yuan per share")
    volume: int = Field(description="shares")
    amount: float = Field(description="price x volume, yuan, fees excluded")
    commission: float = Field(description="the broker's commission on this fill, yuan (the other fees are apart, "
                                          "as in preview_order's estimate)")
    stamp_duty: float | None = Field(None, description="stamp duty on this fill (sells only), yuan")
    transfer_fee: float | None = Field(None, description="transfer fee (过户费) on this fill, yuan")
    fees: float | None = Field(None, description="all fees of this fill: commission + stamp_duty + transfer_fee, "
                                                 "yuan (what the cash moved by besides the amount)")
    fee_detail: Literal["itemized", "derived"] | None = Field(
        None, description="itemized: the counter charged each fee (simulator); derived: the broker reported one "
                          "total (xtquant), stamp duty and transfer fee are the statutory amounts, commission the rest")
    time: str


class TradesResult(Envelope):
    trades: list[TradeOut] | None = None


class EventOut(_Open):
    seq: int
    time: str
    account: str
    type: str
    order_id: int | None = None
    client_order_id: str | None = None
    code: str | None = None
    status: str | None = None


class OrderResult(Envelope):
    order: OrderOut | None = None
    events: list[EventOut] | None = None


class CheckOut(_Out):
    rule: str
    ok: bool
    message: str


class EstimateOut(_Out):
    price: float
    amount: float
    commission: float = Field(description="the broker's commission only, yuan")
    stamp_duty: float
    transfer_fee: float
    total: float = Field(description="cash out for a buy, cash in for a sell, yuan")


class PreviewResult(Envelope):
    would_accept: bool | None = None
    checks: list[CheckOut] | None = None
    estimate: EstimateOut | None = None
    risk: dict[str, Any] | None = None
    live: bool | None = None
    order: dict[str, Any] | None = None
    confirm_token: str | None = None
    confirm_expires_at: str | None = None


class PlaceResult(Envelope):
    order: OrderOut | None = None
    idempotent_replay: bool | None = None


class CancelResult(Envelope):
    order: OrderOut | None = None
    cancel_requested: bool | None = None


class RiskStatusResult(Envelope):
    accounts: dict[str, dict[str, Any]] | None = None


class ResetRiskResult(Envelope):
    breaker: dict[str, Any] | None = None
    reset_at: str | None = Field(None, description="set when the breaker was reset")
    approval: ApprovalOut | None = Field(
        None, description="set when the reset waits for a person: the breaker lifts only when one approves")


class EventsResult(Envelope):
    events: list[EventOut] | None = None
    next_seq: int | None = None


class DecideApprovalResult(Envelope):
    """decide_approval (the MCP Apps order ticket): the decision and the order's status after it."""

    approval_id: str | None = None
    decision: Literal["approved", "denied"] | None = None
    kind: Literal["order", "reset_risk"] | None = None
    account: str | None = None
    order: OrderOut | None = Field(None, description="the order after the decision (None for a breaker reset)")
    refused: ErrorInfo | None = Field(None, description="approved, but refused on the second check: it ended denied")
    breaker: dict[str, Any] | None = None
    reset_at: str | None = None
# ----- history and statements (every figure a decimal string exact to the fen, yuan)
Money = str


class FeesOut(_Out):
    commission: Money
    stamp_duty: Money
    transfer_fee: Money
    total: Money


class StatementDay(_Out):
    date: str = Field(description="YYYY-MM-DD")
    opening_total_asset: Money = Field(description="cash + holdings at the previous close, at the day's opening")
    closing_total_asset: Money = Field(description="cash + holdings at the day's close (today: now)")
    cash: Money = Field(description="all cash at the close, available and frozen")
    market_value: Money
    realized_pnl: Money = Field(description="sum over the day's sells of proceeds after fees less average cost")
    unrealized_pnl: Money = Field(description="market value less cost basis (buy fees included) at the close")
    opening_unrealized_pnl: Money = Field(description="the same at the opening, at the previous close")
    pnl: Money = Field(description="closing_total_asset - opening_total_asset")
    fees: FeesOut
    turnover: Money = Field(description="bought + sold, fees excluded")
    trades: int


class StatementTotals(_Out):
    days: int
    opening_total_asset: Money | None = None
    closing_total_asset: Money | None = None
    realized_pnl: Money
    unrealized_pnl: Money | None = None
    pnl: Money
    fees: FeesOut
    turnover: Money
    trades: int


class StatementResult(Envelope):
    account: str | None = None
    start: str | None = None
    end: str | None = None
    days: list[StatementDay] | None = None
    totals: StatementTotals | None = None


class CodePnl(_Out):
    code: str
    bought: Money = Field(description="yuan bought in the range, fees excluded")
    bought_volume: int
    sold: Money = Field(description="yuan sold in the range, fees excluded")
    sold_volume: int
    realized_pnl: Money
    fees: FeesOut
    position: int = Field(description="shares held at the end of the range")
    cost_price: str = Field(description="average cost per share including buy fees (成本价), yuan, to the li")
    cost_basis: Money
    price: str = Field(description="the price the position is valued at, yuan per share")
    market_value: Money
    unrealized_pnl: Money


class PnlResult(Envelope):
    account: str | None = None
    start: str | None = None
    end: str | None = None
    codes: list[CodePnl] | None = None
# ----- conditional orders (worker/conditions.py)
class TriggerOut(_Out):
    type: Literal["price_at_or_above", "price_at_or_below", "trailing_stop", "time"]
    price: float | None = Field(None, description="yuan per share, against the last price of each new quote")
    trail_percent: float | None = None
    trail_amount: float | None = Field(None, description="yuan per share")
    at: str | None = Field(None, description="+08:00")


class ConditionOrderOut(_Out):
    order_type: Literal["limit", "market"]
    price: float | None
    market_type: str | None


class ConditionOut(_Out):
    condition_id: str
    client_order_id: str = Field(description="what its order carries (get_order finds it by this once it fired)")
    account: str
    code: str
    name: str
    side: Literal["buy", "sell"]
    volume: int = Field(description="shares")
    trigger: TriggerOut
    order: ConditionOrderOut | None = Field(description="null: an alert (it notifies, sends nothing)")
    status: Literal["pending_approval", "armed", "triggered", "canceled", "expired", "failed"]
    status_msg: str = Field(description="why it waits (T+1, the session), failed, or how its price was adjusted")
    created_at: str
    expires_at: str | None = Field(description="null: until canceled (it survives the day roll)")
    triggered_at: str | None
    order_id: int | None
    oco_group: str | None
    live: bool
    high_water: float | None = Field(None, description="trailing_stop: a sell's high (a buy's low) since arming")
    stop_price: float | None = Field(None, description="trailing_stop: where it fires now")
    triggered_price: float | None = Field(None, description="the last price that fired it")
    order_status: str | None = Field(None, description="triggered: its order's status (null: not recorded yet)")
    approval: ApprovalOut | None = None


class ConditionResult(Envelope):
    condition: ConditionOut | None = None
    idempotent_replay: bool | None = None
    preview: dict[str, Any] | None = Field(None, description=(
        "preview_order of the order it would send, as of now (would_accept, checks, estimate with fees, "
        "risk); decided again when it fires. null: an alert"))


class ConditionsResult(Envelope):
    conditions: list[ConditionOut] | None = None
