"""A person confirms live orders and risk resets through MCP elicitation (both protocol eras).

`server.confirm_human`:
- "off": never ask (the two-step confirm token still guards live accounts);
- "if_supported": ask the person when the client can show a form, else rely on the token alone;
- "required": ask, and fail closed (CONFIRM_DECLINED) when the client cannot ask.

The worker decides, not this module (worker/person.py). Two resolvers run before the tool body:
- a *gate* asks the worker for the call's whole decision without acting (`check_order` /
  `check_reset`: validation, token, risk). A refusal there is the answer, and nobody is asked; a
  request that needs a person comes back with a proof the worker will demand on the real call;
- `ask_*` puts the question to the person only then, worded from the worker's own figures.
Where an order would wait for a person (`[approval]`, worker-side) and `approval.channels` includes
"elicitation", place_order's gate also asks the worker for an *approval proof* when the client can
ask (whatever confirm_human is); the one question serves both, and a yes carries that proof too, so
the worker records the approval and approves it in the same call (channel "elicitation").
The tool body sends the proof only when the person said yes. With no proof the worker refuses, so a
skipped question can never turn into a sent order.

On 2026-07-28 the resolvers run again on the retry that carries the answer: the gate fetches a
fresh proof (the checks run again), and the question is worded only from the request, so it reads
the same and its recorded answer applies.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol, cast, get_origin

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult, Resolve
from pydantic import BaseModel, Field

from ..domain.errors import ErrorCode, QmtError
from ..domain.money import yuan_text

ConfirmHuman = Literal["off", "if_supported", "required"]

# The SDK wraps every resolver's value in AcceptedElicitation[Any] (its resolve._accepted). Pydantic
# keeps parameterized models only weakly, so with no reference of ours the class is built again
# after a garbage collection: py-spy of a serving process caught place_order rebuilding it (3% of
# the server's samples). Holding it keeps pydantic's cache warm.
KEEP_ACCEPTED_CLASS = AcceptedElicitation[Any]
WorkerCall = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class HumanConfirm(BaseModel):
    confirm: bool = Field(description="Go ahead with this live request now?")


class Skip(BaseModel):
    """No question was put to the person, and why."""

    reason: Literal["not_needed", "cannot_ask"]


@dataclass(frozen=True)
class Gate:
    """The worker's answer before anyone is asked."""

    asked_for: bool = False                  # this request asked the worker for a person ("person": "ask")
    approval_asked: bool = False             # ... and whether a person asked here may be its approval
    refusal: QmtError | None = None          # the call would be refused: that is the answer
    person: dict[str, Any] | None = None     # proof, expires_at, order, estimate: what the person confirms

    def worker_args(self, outcome: ElicitationResult[Any]) -> dict[str, Any]:
        """What the real call carries: the request for a person, and the proof when they said yes."""
        out: dict[str, Any] = {"person": "ask"} if self.asked_for else {}
        if self.person is None or refusal_of(outcome) is not None:
            return out
        if self.asked_for and "proof" in self.person:
            out.update(person_proof=self.person["proof"], person_channel="elicitation")
        if self.approval_asked and "approval_proof" in self.person:
            out["approval_proof"] = self.person["approval_proof"]
        return out


class HumanGate(Protocol):
    """What the resolvers need from the server: the configured mode and a way to reach the worker."""

    confirm_human: ConfirmHuman
    approval_by_elicitation: bool

    def worker_call(self) -> WorkerCall | None: ...


def _client_can_ask(ctx: Context) -> bool:
    caps = ctx.client_capabilities
    return caps is not None and caps.elicitation is not None


async def _gate(ctx: Context, check: str, args: dict[str, Any], approvals: bool = False) -> Gate:
    server = cast(HumanGate, ctx.mcp_server)
    mode = server.confirm_human
    # A live call always carries a token; without one the worker refuses it anyway (or, for a reset,
    # issues the token), so there is nothing to confirm yet.
    confirm = mode != "off" and args.get("confirm_token") is not None and (
        mode == "required" or _client_can_ask(ctx))
    # An order may wait for a person ([approval], worker-side), who may decide by elicitation: a
    # client that can ask lets the worker say so, whatever confirm_human is.
    approve = approvals and server.approval_by_elicitation and _client_can_ask(ctx)
    if not confirm and not approve:
        return Gate()
    call = server.worker_call()
    if call is None:
        return Gate(asked_for=confirm)  # the real call reports the missing worker
    ask: dict[str, Any] = {"person": "ask"} if confirm else {}
    if approve:
        ask["person_approval"] = "ask"
    try:
        answer = await call(check, {**{k: v for k, v in args.items() if v is not None}, **ask})
    except QmtError as exc:
        # Without a confirmation to ask for, the real call gives the refusal itself, as before.
        return Gate(asked_for=True, refusal=exc) if confirm else Gate()
    return Gate(asked_for=confirm, approval_asked=approve, person=answer.get("person"))


async def gate_order(
    account: str, code: str, side: str, volume: int, price: float | None, order_type: str,
    market_type: str | None, client_order_id: str | None, confirm_token: str | None, ctx: Context,
) -> Gate:
    """place_order's gate (tool arguments arrive by name, validated)."""
    args = {"account": account, "code": code, "side": side, "volume": volume, "price": price,
            "order_type": order_type, "market_type": market_type, "client_order_id": client_order_id,
            "confirm_token": confirm_token}
    return await _gate(ctx, "check_order", args, approvals=True)


async def gate_reset(account: str, note: str, confirm_token: str | None, ctx: Context) -> Gate:
    """reset_risk's gate."""
    return await _gate(ctx, "check_reset", {"account": account, "note": note, "confirm_token": confirm_token})


def _ask(gate: Gate, ctx: Context, question: Callable[[dict[str, Any]], str]) -> Elicit[HumanConfirm] | Skip:
    if gate.refusal is not None or gate.person is None:
        return Skip(reason="not_needed")
    if not _client_can_ask(ctx):
        return Skip(reason="cannot_ask")
    return Elicit(question(gate.person), HumanConfirm)


def _money(value: Any) -> str:
    return yuan_text(value) if isinstance(value, int | float) and not isinstance(value, bool) else "(not known)"


def _order_question(person: dict[str, Any]) -> str:
    order, est = person.get("order", {}), person.get("estimate", {})
    name = str(order.get("name", ""))[:40]
    side = "BUY" if order.get("side") == "buy" else "SELL"
    # A paper order is put to a person only as an approval ([approval] human = "all").
    what = "LIVE order" if order.get("live", True) else "Order (paper account)"
    head = (f"{what} on account '{order.get('account')}': {side} {order.get('volume')} shares of "
            f"{order.get('code')} {name}")
    if order.get("order_type", "limit") == "limit":
        return (f"{head} at {order.get('price')} yuan per share (limit). Amount {_money(est.get('amount'))}; "
                f"commission {_money(est.get('commission'))}, stamp duty {_money(est.get('stamp_duty'))}, "
                f"transfer fee {_money(est.get('transfer_fee'))}; total {_money(est.get('total'))}. Send it?")
    # A market order's fill price is not known in advance: say what bounds it. A buy without a
    # protective price is costed at the day's up limit, the worst it can trade at; that figure is
    # stable all day, so the question reads the same on the retry that carries the answer.
    bound = ""
    if order.get("price"):
        bound = f" bounded by {order['price']} yuan per share"
    elif side == "BUY" and est.get("price"):
        bound = (f", which may trade up to {est.get('price')} yuan per share (today's limit): at most "
                 f"{_money(est.get('total'))} with fees")
    return f"{head} at market ({order.get('market_type') or 'best5_cancel'}){bound}. Send it?"


def _reset_question(person: dict[str, Any]) -> str:
    account = person.get("order", {}).get("account")
    return (f"LIVE account '{account}': the agent asks to reset the daily-loss breaker, which lets it open "
            "new positions again today. Reset it?")


async def ask_order(gate: Annotated[Gate, Resolve(gate_order)], ctx: Context) -> Elicit[HumanConfirm] | Skip:
    return _ask(gate, ctx, _order_question)


async def ask_reset(gate: Annotated[Gate, Resolve(gate_reset)], ctx: Context) -> Elicit[HumanConfirm] | Skip:
    return _ask(gate, ctx, _reset_question)


def refusal_of(outcome: ElicitationResult[Any]) -> QmtError | None:
    """What the person's answer (or the lack of one) refuses; None when it lets the call go on."""
    if isinstance(outcome, AcceptedElicitation):
        data = outcome.data
        if isinstance(data, Skip):
            if data.reason == "not_needed":
                return None
            return QmtError(
                "a person must confirm this live request, and this client cannot ask them",
                code=ErrorCode.CONFIRM_DECLINED,
                hint="Use an MCP client that supports elicitation (forms), or act by hand.",
                details={"reason": "client_cannot_ask"},
            )
        if isinstance(data, HumanConfirm) and data.confirm:
            return None
        return QmtError("the person did not confirm", code=ErrorCode.CONFIRM_DECLINED)
    return QmtError(f"the person {outcome.action}d the confirmation", code=ErrorCode.CONFIRM_DECLINED,
                    details={"action": outcome.action})


def never_asks(confirm_human: ConfirmHuman, approval_by_elicitation: bool) -> bool:
    """Whether a server configured so can ever put a question to a person: then its gates find nothing
    to ask (`_gate` returns `Gate()` whatever the call) and every ask_* skips as not needed."""
    return confirm_human == "off" and not approval_by_elicitation


def without_asking(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """The tool `fn` for a server that never asks anyone (`never_asks`): its Resolve parameters (the
    gate and the person) left out of the signature and given what they would resolve to there, an
    empty Gate and a question skipped as not needed. The SDK runs a tool's resolvers on every call,
    which costs place_order 0.16 ms even when both only say "nobody to ask"; a tool without any is
    returned as it is."""
    sig = inspect.signature(fn, eval_str=True)
    given: dict[str, Any] = {}
    for name, param in sig.parameters.items():
        if not any(isinstance(m, Resolve) for m in getattr(param.annotation, "__metadata__", ())):
            continue
        kind = param.annotation.__origin__
        if kind is Gate:
            given[name] = Gate()
        elif get_origin(kind) is ElicitationResult:
            given[name] = NOT_ASKED
        else:
            raise TypeError(f"{fn.__name__}: nothing stands in for its resolved parameter {name!r}")
    if not given:
        return fn

    @functools.wraps(fn)
    async def unasked(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs, **given)

    unasked.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p for name, p in sig.parameters.items() if name not in given])
    return unasked


NOT_ASKED: ElicitationResult[Any] = AcceptedElicitation[Any](data=Skip(reason="not_needed"))
