"""The catalogue of calls: every worker call declared once.

Each `Call` names the call, its arguments model (the one place each bound is written: the MCP tool's
signature is built from the same argument types below, and the worker validates every request with
the model before its handler runs), whether it changes broker or risk state (what is audited, and
what the server never retries after a request may have been sent), and, for the calls agents make,
the tool's title and description. Registration (server/tools), routing (bootstrap), auditing
(worker/api) and retry safety (server/worker_client) all read it; tests/test_catalogue.py fails when
a call is missing from any of them or its tool's arguments drift from its model.

Adding a tool: its `Call` here, its function in `server/tools/<area>.py`, its handler in the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .domain.errors import InvalidArgument


def _digits_as_text(width: int) -> Callable[[Any], Any]:
    """Some clients send a bare number for a code or a date (the newer Inspector CLI turns
    `code=600000` into 600000): take it as the digits it was typed as."""

    def convert(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0 or len(str(value)) > width:
                raise ValueError(f"a number here must have at most {width} digits")
            return str(value).zfill(6) if width == 6 else str(value)
        return value

    return convert


# ----- argument types: each bound written once
Account = Annotated[str, Field(description="configured account name, e.g. sim (see list_accounts)")]
Code = Annotated[str, BeforeValidator(_digits_as_text(6)),
                 Field(description="instrument code: 600000.SH, sh600000 or 600000")]
Codes = Annotated[list[Code], Field(min_length=1, max_length=50, description="1-50 instrument codes")]
When = Annotated[str | None, BeforeValidator(_digits_as_text(14)),
                 Field(description="YYYYMMDD, YYYYMMDDHHMMSS or ISO-8601")]
Day = Annotated[str | None, BeforeValidator(_digits_as_text(14)),
               Field(description="a day: YYYYMMDD or YYYY-MM-DD (Asia/Shanghai); default today")]
WhenRequired = Annotated[str, BeforeValidator(_digits_as_text(14)),
                         Field(description="YYYYMMDD, YYYYMMDDHHMMSS or ISO-8601")]
Side = Literal["buy", "sell"]
Volume = Annotated[int, Field(gt=0, description="shares (not lots)")]
Price = Annotated[float | None, Field(gt=0, description="yuan per share; required for limit orders")]
OrderType = Literal["limit", "market"]
MarketType = Literal["best5_cancel", "best5_limit", "counterparty_best", "own_best", "ioc", "fok"]
Period = Literal["1m", "5m", "15m", "30m", "60m", "1d", "1w"]
Adjust = Literal["none", "front", "back"]
Wait = Annotated[float, Field(ge=0, le=60, description="seconds to wait for a final status (0-60)")]
LongPoll = Annotated[float, Field(ge=0, le=60, description="long-poll up to this many seconds")]
ClientOrderId = Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]{1,24}$",
                                            description="your id for this order (1-24 letters, digits, - _)")]
OrderId = Annotated[int, Field(description="the broker's order id")]
MaybeOrderId = Annotated[int | None, Field(description="the broker's order id")]
MaybeAccount = Annotated[str | None, Field(description="one account; all when omitted")]
Token = Annotated[str | None, Field(max_length=1024, description="from preview_order")]
CancelToken = Annotated[str | None, Field(max_length=1024, description=(
    "live accounts, orders placed by hand (ext-…): from the first call's CONFIRM_REQUIRED"))]
ResetToken = Annotated[str | None, Field(max_length=1024)]
Note = Annotated[str, Field(min_length=1, max_length=200, description="why, recorded with the reset")]
BarCount = Annotated[int, Field(ge=1, le=5000)]
SearchText = Annotated[str | None, Field(max_length=40, description="code prefix or part of the name")]
SectorName = Annotated[str | None, Field(max_length=40, description="a name from list_sectors")]
SearchLimit = Annotated[int, Field(ge=1, le=500)]
AfterSeq = Annotated[int, Field(ge=0)]
EventLimit = Annotated[int, Field(ge=1, le=1000)]


class Args(BaseModel):
    """Arguments of one call: an unknown name is refused, never ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset()   # fields the server adds, not the tool's


class NoArgs(Args):
    pass


class AccountArgs(Args):
    account: Account


class QuoteArgs(Args):
    codes: Codes


class KlineArgs(Args):
    code: Code
    period: Period = "1d"
    start: When = None
    end: When = None
    count: BarCount = 100
    adjust: Adjust = "none"


class TickArgs(Args):
    code: Code
    start: WhenRequired
    end: WhenRequired
    limit: BarCount = 100


class SearchArgs(Args):
    query: SearchText = None
    sector: SectorName = None
    limit: SearchLimit = 20


class InstrumentArgs(Args):
    code: Code


class OrdersArgs(Args):
    account: Account
    cancelable_only: bool = False
    start: Day = None
    end: Day = None


class TradesArgs(Args):
    account: Account
    start: Day = None
    end: Day = None


class StatementArgs(Args):
    account: Account
    start: Day = None
    end: Day = None


class PnlArgs(StatementArgs):
    code: Code | None = None


class OrderLookupArgs(Args):
    account: Account
    order_id: MaybeOrderId = None
    client_order_id: ClientOrderId = None
    wait_seconds: Wait = 0


class PreviewArgs(Args):
    account: Account
    code: Code
    side: Side
    volume: Volume
    price: Price = None
    order_type: OrderType = "limit"
    market_type: MarketType | None = None


class PlaceArgs(PreviewArgs):
    client_order_id: ClientOrderId = None
    confirm_token: Token = None
    wait_seconds: Wait = 0


class CancelArgs(Args):
    account: Account
    order_id: OrderId
    confirm_token: CancelToken = None


class WorkerPlaceArgs(PlaceArgs):
    """place_order as the worker takes it: the tool's arguments, plus what the server adds for the
    person in the loop (server/human.py, worker/person.py); never an agent's to send."""

    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"person", "person_proof", "person_channel",
                                                       "person_approval", "approval_proof"})
    person: Literal["ask"] | None = None
    person_proof: Annotated[str | None, Field(max_length=1024)] = None
    person_channel: Literal["elicitation"] | None = None
    # The server can ask a person through elicitation (check_order: issue the proof an approval by that
    # channel will carry), and the proof itself on the real call, sent only when the person said yes.
    person_approval: Literal["ask"] | None = None
    approval_proof: Annotated[str | None, Field(max_length=1024)] = None


class RiskStatusArgs(Args):
    account: MaybeAccount = None


class ResetArgs(Args):
    account: Account
    note: Note
    confirm_token: ResetToken = None


class WorkerResetArgs(ResetArgs):
    SERVER_ONLY: ClassVar[frozenset[str]] = WorkerPlaceArgs.SERVER_ONLY
    person: Literal["ask"] | None = None
    person_proof: Annotated[str | None, Field(max_length=1024)] = None
    person_channel: Literal["elicitation"] | None = None


# ----- the operator's calls (a person at the CLI or the console; never an agent's tool)
OperatorNote = Annotated[str, Field(min_length=1, max_length=200, description="why, recorded and audited")]
Channel = Literal["cli", "console"]


class OperatorArgs(Args):
    account: Account
    note: OperatorNote
    channel: Channel = "cli"   # where the person acted: recorded in the journal's risk event and the audit


ApprovalId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$",
                                  description="the order's approval.approval_id (or from qmt-mcp approvals)")]
# Where a person decided: the operator's two (operator key), and the MCP Apps order ticket, which the
# MCP server's worker token sends for the host (Call.server_channel below).
DecisionChannel = Literal["cli", "console", "app"]
DecisionNote = Annotated[str | None, Field(max_length=200, description="why, recorded and audited")]


class ListApprovalsArgs(Args):
    channel: Channel = "cli"


class DecideApprovalArgs(Args):
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"channel"})   # the app tool's channel is the server's word
    approval_id: ApprovalId
    decision: Literal["approve", "deny"]
    note: DecisionNote = None
    channel: DecisionChannel = "cli"   # must be one of [approval] channels to count


class KillSwitchArgs(OperatorArgs):
    on: bool


class BlockCodeArgs(OperatorArgs):
    code: Code
    blocked: bool


class EventsArgs(Args):
    account: Account
    after_seq: AfterSeq = 0
    limit: EventLimit = 100
    wait_seconds: LongPoll = 0


# ----- conditional orders (CONTRACT.md 0.2 "Conditional orders, held by the gateway")
TriggerKind = Literal["price_at_or_above", "price_at_or_below", "trailing_stop", "time"]
ConditionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="from place_conditional_order")]
OcoGroup = Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", description=(
    "conditions of one account sharing a group: when one fires, the others are canceled"))]


class TriggerArgs(Args):
    type: TriggerKind
    price: Annotated[float | None, Field(gt=0, description="price triggers: yuan per share, on the last price")] = None
    trail_percent: Annotated[float | None, Field(gt=0, lt=100, description="trailing_stop: % of the mark")] = None
    trail_amount: Annotated[float | None, Field(gt=0, description="trailing_stop: yuan per share")] = None
    at: Annotated[str | None, BeforeValidator(_digits_as_text(14)), Field(
        description="time: Asia/Shanghai, YYYYMMDDHHMMSS or ISO-8601")] = None


class ConditionOrderArgs(Args):
    order_type: OrderType
    price: Price = None
    market_type: MarketType | None = None


class ConditionArgs(Args):
    account: Account
    code: Code
    side: Side
    volume: Volume
    trigger: TriggerArgs
    order: ConditionOrderArgs | None = None
    expires_at: When = None
    oco_group: OcoGroup = None
    client_order_id: ClientOrderId = None
    confirm_token: Token = None


class ListConditionsArgs(Args):
    account: Account
    active_only: bool = False


class CancelConditionArgs(Args):
    account: Account
    condition_id: ConditionId
class KlineKey(Args):
    code: Code
    period: Period


class WatchQuotesArgs(Args):
    """What one server's quote stream follows (worker/quotes.py): the whole set, each time."""

    watcher: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    codes: Annotated[list[Code], Field(max_length=2000)] = []
    klines: Annotated[list[KlineKey], Field(max_length=2000)] = []


Kind = Literal["read", "order", "cancel"]   # the tool's annotations: read-only, destructive, destructive+idempotent


@dataclass(frozen=True)
class Tool:
    title: str
    description: str
    kind: Kind = "read"


@dataclass(frozen=True)
class Call:
    name: str
    args: type[Args] | None        # None: the worker's own internal call, checked by its handler
    changes_state: bool = False    # audited; never retried once the request may have been sent
    tool: Tool | None = None       # None: not an agent's tool (the server's own plumbing)
    # A person's control: the worker takes it only with the operator key (operator.key in the state
    # dir), never with the MCP server's worker token, and it is never a tool...
    operator: bool = False
    # ...except as this one channel: the MCP server's worker token may make the call only with
    # `channel` set to it, and the operator key never with it (decide_approval from the MCP Apps order
    # ticket: the host shows the tool to the view, not to the model; it counts only where
    # `[approval] channels` lists "app"). README "MCP Apps" says what that trusts.
    server_channel: Literal["app"] | None = None


CATALOGUE: dict[str, Call] = {c.name: c for c in (
    Call("health", NoArgs, changes_state=False, tool=Tool(
        'Health',
        'Worker, market-data and per-account trader state (restarts, risk breaker, baseline). Call '
        'first in a session, and whenever a call returns WORKER_UNAVAILABLE or TIMEOUT.',
        kind="read")),
    Call("list_accounts", NoArgs, changes_state=False, tool=Tool(
        'List accounts',
        'Configured accounts by name, with masked ids and whether they are live. Use the name as '
        '`account` in the other tools.',
        kind="read")),
    Call("get_quote", QuoteArgs, changes_state=False, tool=Tool(
        'Get quotes',
        'Latest quotes with the 5-level book for 1-50 codes (600000.SH, sh600000 or 600000). Prices in '
        'yuan per share, volume in shares, amount in yuan.',
        kind="read")),
    Call("get_klines", KlineArgs, changes_state=False, tool=Tool(
        'Get klines',
        'OHLC bars for one code. period: 1m 5m 15m 30m 60m 1d 1w; times +08:00 (bar start); volume in '
        'shares, amount in yuan. start/end accept YYYYMMDD, YYYYMMDDHHMMSS or ISO; count (default 100, '
        'max 5000) keeps the latest bars.',
        kind="read")),
    Call("get_ticks", TickArgs, changes_state=False, tool=Tool(
        'Get ticks',
        'Historical 3-second snapshots of one code between start and end (yuan, shares), at most '
        '`limit` (default 100).',
        kind="read")),
    Call("search_instruments", SearchArgs, changes_state=False, tool=Tool(
        'Search instruments',
        'Find codes by code prefix or part of the name, optionally within a sector from list_sectors.',
        kind="read")),
    Call("get_instrument", InstrumentArgs, changes_state=False, tool=Tool(
        'Get instrument',
        'Trading rules of one code today: lot sizes (shares), price tick (yuan), daily limits (yuan), '
        'ST, suspension, T+1. Check before sizing an order.',
        kind="read")),
    Call("list_sectors", NoArgs, changes_state=False, tool=Tool(
        'List sectors',
        'Sector names usable in search_instruments.',
        kind="read")),
    Call("get_asset", AccountArgs, changes_state=False, tool=Tool(
        'Get asset',
        'Cash available, frozen cash, market value and total asset of an account, yuan.',
        kind="read")),
    Call("get_positions", AccountArgs, changes_state=False, tool=Tool(
        'Get positions',
        "Holdings: volume and can_use_volume (sellable now; today's buys sell from the next day) in "
        'shares; prices and money in yuan. avg_price is the average fill price, fees excluded; '
        'cost_price the average cost with the buy fees (成本价); unrealized_pnl = market_value - '
        "cost_basis (buy fees counted, a future sell's not).",
        kind="read")),
    Call("get_orders", OrdersArgs, changes_state=False, tool=Tool(
        'Get orders',
        "Orders of an account with status, today's unless start/end (days, YYYYMMDD) name others: every "
        'day the worker recorded (orders placed by hand included); cancelable_only for open ones.',
        kind="read")),
    Call("get_trades", TradesArgs, changes_state=False, tool=Tool(
        'Get trades',
        "Fills, today's unless start/end (days, YYYYMMDD) name others: price (yuan), volume (shares), amount "
        '(yuan, fees excluded) and fees (yuan) itemized as in preview_order: commission, stamp_duty, '
        'transfer_fee, and fees (their sum).',
        kind="read")),
    Call("get_statement", StatementArgs, changes_state=False, tool=Tool(
        'Get statement',
        'Daily statement of an account from start to end (days, YYYYMMDD; default today): opening and closing '
        'total asset, cash, market value, realized and unrealized P&L, fees by kind, turnover and trades per '
        'day, and totals. Money in yuan as decimal strings exact to the fen; cost includes fees (成本价).',
        kind="read")),
    Call("get_pnl", PnlArgs, changes_state=False, tool=Tool(
        'Get P&L',
        'P&L per code from start to end (days, YYYYMMDD; default today), optionally one code: bought and sold '
        '(yuan), realized P&L (proceeds after fees less average cost incl. fees), fees, and the position at the '
        'end with its cost_price (成本价, yuan per share) and unrealized P&L. Decimal strings, exact to the fen.',
        kind="read")),
    Call("get_order", OrderLookupArgs, changes_state=False, tool=Tool(
        'Get order',
        'One order by order_id or client_order_id, with its events. wait_seconds (0-60) waits for a '
        'final status. Use it to resolve SUBMIT_INDETERMINATE.',
        kind="read")),
    Call("preview_order", PreviewArgs, changes_state=False, tool=Tool(
        'Preview order',
        'Dry run of an order: every rule-book check and risk rule, the cost with fees (yuan: '
        'commission, stamp duty, transfer fee) and, for live accounts, the confirm_token place_order '
        'needs. Places nothing. Show the result to the person before placing.',
        kind="read")),
    Call("place_order", WorkerPlaceArgs, changes_state=True, tool=Tool(
        'Place order',
        'Send an order. volume in shares, price in yuan per share (limit orders; for SH/BJ best5 market'
        ' orders the protective price, the worst they may trade at; other market orders take none and '
        'may trade up to the daily limit). Live accounts need confirm_token from preview_order. Give a '
        'client_order_id (not starting with ext-) so a retry can never double the order; on '
        'SUBMIT_INDETERMINATE call get_order, never place again.',
        kind="order")),
    Call("cancel_order", CancelArgs, changes_state=True, tool=Tool(
        'Cancel order',
        'Ask the broker to cancel an open order; returns its status after the request. Canceling an '
        'already canceled order changes nothing. On a live account, an order a person placed by hand '
        '(client_order_id ext-…) is theirs: the first call returns CONFIRM_REQUIRED with a '
        'confirm_token; ask the person, and only if they agree call again with it.',
        kind="cancel")),
    Call("get_risk_status", RiskStatusArgs, changes_state=False, tool=Tool(
        'Get risk status',
        "Per account: baseline and current total asset (yuan), today's P&L, the loss breaker, kill "
        "switch, limits and today's usage.",
        kind="read")),
    Call("reset_risk", WorkerResetArgs, changes_state=True, tool=Tool(
        'Reset risk',
        'Lift a tripped daily-loss breaker, with a note (1-200 chars) that is recorded. Live accounts: '
        'the first call returns CONFIRM_REQUIRED with a token to send back. Where a person must approve, '
        'the answer carries an approval instead of reset_at and the breaker stays tripped until they do.',
        kind="order")),
    Call("get_order_events", EventsArgs, changes_state=False, tool=Tool(
        'Get order events',
        'Events of an account after after_seq, in seq order: order status, fills, errors, risk. Pass '
        'next_seq back to continue; wait_seconds (0-60) long-polls for the next event.',
        kind="read")),
    Call("place_conditional_order", ConditionArgs, changes_state=True, tool=Tool(
        'Place conditional order',
        'Arm a stop, take-profit, trailing stop, time order or alert that the gateway holds and sends '
        'when it fires (miniQMT has none of its own). trigger.type: price_at_or_above / price_at_or_below '
        '(trigger.price, yuan, on the last price of each new quote; a gap through it fires at the first '
        'quote beyond), trailing_stop (trail_percent or trail_amount from the high since arming for a '
        'sell, the low for a buy), time (trigger.at, Asia/Shanghai). order {order_type, price?, '
        'market_type?} is what it sends (volume in shares; preview_order with the same fields shows it); '
        'omit order for an alert. expires_at (default: until canceled); oco_group: one fires, the others '
        'are canceled. Fires once; checks and risk run again then. Sells need sellable shares when it '
        'fires (T+1: it waits). Live accounts: the first call returns CONFIRM_REQUIRED with a '
        'confirm_token; show the person, then call again with it.',
        kind="order")),
    Call("list_conditional_orders", ListConditionsArgs, changes_state=False, tool=Tool(
        'List conditional orders',
        "The account's conditions with status (armed, triggered, canceled, expired, failed) and "
        'status_msg (why one waits or failed); active_only for the armed ones.',
        kind="read")),
    Call("cancel_conditional_order", CancelConditionArgs, changes_state=True, tool=Tool(
        'Cancel conditional order',
        'Disarm a condition; canceling one that is no longer armed changes nothing and returns it. An '
        'order it already sent is an ordinary order: cancel_order cancels that.',
        kind="cancel")),
    # The server's own plumbing: not tools. Their handlers check their own arguments.
    Call("latest_events", None),
    Call("note_gap", None),
    Call("check_order", WorkerPlaceArgs),
    Call("check_reset", WorkerResetArgs),
    Call("lease", None),
    Call("watch_quotes", WatchQuotesArgs),   # the quote stream's codes (worker/quotes.py)
    Call("release", None),
    # A person's controls (`qmt-mcp kill-switch`, `risk reset`, `block`): the operator key only.
    Call("set_kill_switch", KillSwitchArgs, changes_state=True, operator=True),
    Call("set_blocked_code", BlockCodeArgs, changes_state=True, operator=True),
    Call("operator_reset_risk", OperatorArgs, changes_state=True, operator=True),
    # Approvals (`qmt-mcp approvals`, `approve`, `deny`): a person's, never the agent's. Listing is
    # marked too: every operator call is audited, so the trail shows who looked as well as who decided.
    Call("list_approvals", ListApprovalsArgs, operator=True),   # a read: not audited, safe to retry
    Call("decide_approval", DecideApprovalArgs, changes_state=True, operator=True, server_channel="app", tool=Tool(
        'Decide approval',
        "App-only (MCP Apps visibility [\"app\"]): the order ticket's Approve / Deny, a person's decision on "
        'an order waiting for one. Hosts hide it from the model; a client without MCP Apps is refused.',
        kind="order")),
    # The audit chain's state for the operator console (worker/audit_status.py): a read, not a tool.
    Call("audit_status", NoArgs),
)}


STATE_CHANGING: frozenset[str] = frozenset(c.name for c in CATALOGUE.values() if c.changes_state)
OPERATOR: frozenset[str] = frozenset(c.name for c in CATALOGUE.values() if c.operator)
SERVER_CHANNEL: dict[str, str] = {c.name: c.server_channel for c in CATALOGUE.values() if c.server_channel}


def invalid_arguments(exc: ValidationError) -> InvalidArgument:
    """A pydantic refusal as the contract's INVALID_ARGUMENT, naming each argument (sorted)."""
    names = sorted({".".join(str(p) for p in e["loc"]) or "(arguments)" for e in exc.errors()})
    msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in exc.errors())
    return InvalidArgument(f"invalid arguments: {msgs}", details={"arguments": names})


def checked_args(name: str, args: dict[str, Any]) -> Args | dict[str, Any]:
    """`args` of the call `name` as an instance of its model: values as the model reads them (a code
    typed as a number becomes its six digits), the model's defaults for what was not given. Raises
    InvalidArgument naming what is wrong; a call without a model gets `args` as they came."""
    call = CATALOGUE.get(name)
    if call is None or call.args is None:
        return args
    try:
        return call.args.model_validate(args)
    except ValidationError as exc:
        raise invalid_arguments(exc) from None
