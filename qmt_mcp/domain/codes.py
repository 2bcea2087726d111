"""Instrument codes: the input forms the contract accepts, the canonical form, boards by prefix."""

from __future__ import annotations

import re
from enum import StrEnum

from .errors import InvalidArgument


class Exchange(StrEnum):
    SH = "SH"
    SZ = "SZ"
    BJ = "BJ"


class Board(StrEnum):
    SH_MAIN = "sh_main"
    SZ_MAIN = "sz_main"
    CHINEXT = "chinext"
    STAR = "star"
    BSE = "bse"
    FUND = "fund"


_CANON = re.compile(r"^(\d{6})\.(SH|SZ|BJ)$")
_PREFIXED = re.compile(r"^(SH|SZ|BJ)(\d{6})$")
_BARE = re.compile(r"^\d{6}$")


def infer_exchange(digits: str) -> Exchange:
    """The exchange of a bare six-digit code, from its prefix (raises InvalidArgument if none fits)."""
    if digits.startswith(("60", "68", "5", "9")) and not digits.startswith("92"):
        return Exchange.SH
    if digits.startswith(("00", "30", "15", "16", "18")):
        return Exchange.SZ
    if digits.startswith(("8", "4", "92")):
        return Exchange.BJ
    raise InvalidArgument(
        f"cannot tell the market of code {digits!r}",
        hint="Give the code with its market, e.g. 600000.SH, 000001.SZ or 830799.BJ.",
        details={"argument": "code"},
    )


def normalize_code(raw: object) -> str:
    """Canonical `NNNNNN.SH|SZ|BJ` from any accepted input form; InvalidArgument otherwise."""
    if not isinstance(raw, str):
        raise InvalidArgument("code must be a string", details={"argument": "code"})
    text = raw.strip().upper()
    if m := _CANON.match(text):
        return text
    if m := _PREFIXED.match(text):
        return f"{m.group(2)}.{m.group(1)}"
    if _BARE.match(text):
        return f"{text}.{infer_exchange(text).value}"
    raise InvalidArgument(
        f"not an instrument code: {raw[:20]!r}",
        hint="Use 600000.SH, sh600000 or 600000.",
        details={"argument": "code"},
    )


def board_of(code: str) -> Board:
    """The board of a canonical code, by prefix."""
    digits, _, market = code.partition(".")
    if market == "BJ":
        return Board.BSE
    if market == "SH":
        if digits.startswith("688") or digits.startswith("689"):
            return Board.STAR
        if digits.startswith("5"):
            return Board.FUND
        return Board.SH_MAIN
    if digits.startswith("30"):
        return Board.CHINEXT
    if digits.startswith(("15", "16", "18")):
        return Board.FUND
    return Board.SZ_MAIN


def exchange_of(code: str) -> Exchange:
    return Exchange(code.rpartition(".")[2])
