"""Exact money and share arithmetic. Prices and money are Decimal; volumes are int shares.

Rounding to the fen is half-up, as broker fee schedules and exchange limit prices round.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import InvalidArgument

FEN = Decimal("0.01")
ZERO = Decimal(0)


def to_decimal(value: object, argument: str) -> Decimal:
    """Parse a price or amount given as str/int/float into Decimal (floats via their shortest repr)."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{argument} must be a number", details={"argument": argument})
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int | str):
        try:
            d = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise InvalidArgument(f"{argument} is not a number", details={"argument": argument}) from exc
    elif isinstance(value, float):
        d = Decimal(repr(value))
    else:
        raise InvalidArgument(f"{argument} must be a number", details={"argument": argument})
    if not d.is_finite():
        raise InvalidArgument(f"{argument} must be finite", details={"argument": argument})
    return d


def round_fen(amount: Decimal) -> Decimal:
    return amount.quantize(FEN, rounding=ROUND_HALF_UP)


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP) * tick


def is_on_tick(price: Decimal, tick: Decimal) -> bool:
    return (price / tick) == (price / tick).to_integral_value()


def money_float(amount: Decimal) -> float:
    """Output form for JSON: a float rounded to the fen (the exact value stays Decimal inside)."""
    return float(round_fen(amount))


def yuan_text(amount: Decimal | float | int) -> str:
    """Money for people, one way everywhere: rounded half-up to the fen, thousands separated, with
    the unit: `994,884.95 yuan`, `-10.05 yuan`, `5.00 yuan`. A float is read through its shortest
    repr (as `to_decimal` does), so 0.1 prints as 0.10, never as 0.1000000000000000055.
    Raises InvalidArgument for a bool, a non-number or a non-finite value."""
    fen = round_fen(to_decimal(amount, "amount"))
    if fen == 0:
        fen = abs(fen)  # no "-0.00 yuan" for a loss that rounds to nothing
    return f"{fen:,.2f} yuan"
