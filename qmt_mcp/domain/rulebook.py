"""The rule book: every exchange and counter rule the simulator enforces, with the dates it holds.

The values live where they are applied (instruments, fees, sessions, the counter); this table names
each rule once, says when it is in force and where it comes from. Each rule has a test marked
`@pytest.mark.rule("ID")`, and a test fails when a rule here has none.
Sources marked "(memory)" are from rule summaries and should be checked against the rule text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Rule:
    id: str
    summary: str
    source: str
    since: date | None = None
    until: date | None = None   # last day in force

    def in_force(self, on: date) -> bool:
        return (self.since is None or on >= self.since) and (self.until is None or on <= self.until)


D = date.fromisoformat
RULES: tuple[Rule, ...] = (
    # ----- instruments
    Rule("BOARD_BY_PREFIX", "board from code prefix: 60 SH main, 00 SZ main, 30 ChiNext, 688/689 STAR, "
         "8/4/92 BSE, 5/15/16/18 funds", "SSE/SZSE/BSE code allocation"),
    Rule("LOT_ROUND_100", "main-board, ChiNext and fund buys in multiples of 100 shares", "SZSE rules 3.3.8"),
    Rule("LOT_STAR_200_THEN_1", "STAR buys at least 200 shares, then steps of 1", "SSE STAR rules"),
    Rule("LOT_BSE_100_THEN_1", "BSE buys at least 100 shares, then steps of 1", "BSE trading rules"),
    Rule("ODD_LOT_SELL_OUT_ONLY", "an odd lot may only be sold in one order with the whole remainder",
         "SZSE rules 3.3.8 (memory)"),
    Rule("TICK_STOCK", "stock prices on a 0.01 yuan tick", "SZSE rules 3.3.12"),
    Rule("TICK_FUND", "fund (ETF) prices on a 0.001 yuan tick", "SZSE rules 3.3.12"),
    Rule("MAX_ORDER_VOLUME", "one order at most: main/BSE/funds 1,000,000 shares; ChiNext 300,000 limit "
         "and 150,000 market; STAR 100,000 limit and 50,000 market", "exchange rules (memory)"),
    Rule("SUSPENDED", "a suspended instrument takes no orders", "exchange rules"),
    # ----- daily limits
    Rule("LIMIT_MAIN_10", "main-board daily limit ±10% of the previous close", "SZSE rules 3.3.13"),
    Rule("LIMIT_CHINEXT_20", "ChiNext daily limit ±20% (±10% before 2020-08-24)", "SZSE ChiNext rules",
         since=D("2020-08-24")),
    Rule("LIMIT_STAR_20", "STAR daily limit ±20%", "SSE STAR rules", since=D("2019-07-22")),
    Rule("LIMIT_BSE_30", "BSE daily limit ±30%", "BSE trading rules", since=D("2021-11-15")),
    Rule("LIMIT_ST_MAIN_5", "main-board ST/*ST daily limit ±5%", "SSE/SZSE rules before the 2026 revision",
         until=D("2026-07-05")),
    Rule("LIMIT_ST_MAIN_10", "main-board ST/*ST daily limit ±10%", "SSE notice 2026-04-24; 深证上〔2026〕551号 §10.9",
         since=D("2026-07-06")),
    Rule("LIMIT_ROUNDING", "limit price = previous close × (1 ± ratio), rounded half-up to the tick",
         "SZSE rules 3.3.19"),
    Rule("NEW_LISTING_NO_LIMIT", "no daily limit in a new listing's first 5 trading days (STAR, ChiNext, "
         "and main board for listings from 2023-04-10); BSE first day only", "SZSE rules 3.3.15; BSE rules"),
    # ----- price cage (continuous auction limit orders)
    Rule("PRICE_CAGE_MAIN_CHINEXT", "continuous-auction limit buy ≤ max(102% of the buy base, base + 10 ticks), "
         "sell ≥ min(98% of the sell base, base − 10 ticks); main boards and ChiNext",
         "SZSE rules 3.3.16; SSE main-board rules", since=D("2023-04-10")),
    Rule("PRICE_CAGE_STAR", "continuous-auction limit buy ≤ 102% of the buy base, sell ≥ 98% of the sell base",
         "SSE STAR rules", since=D("2019-07-22")),
    Rule("PRICE_CAGE_BSE", "continuous-auction limit buy ≤ max(105% of base, base + 0.10), "
         "sell ≥ min(95% of base, base − 0.10)", "BSE trading rules (memory)"),
    Rule("PRICE_CAGE_BASE", "the buy base is the best ask, else the best bid, else the last price, else the "
         "previous close (the sell base mirrors it); the cage does not apply in call auctions",
         "SZSE rules 3.3.16"),
    # ----- settlement and fees
    Rule("T_PLUS_1", "shares bought today can be sold from the next trading day", "SZSE rules 3.1.4"),
    Rule("T_PLUS_0_FUNDS", "gold, bond, money-market and cross-border ETFs can be sold the day they are bought",
         "exchange fund rules"),
    Rule("STAMP_DUTY_0_1", "stamp duty 0.1% of a sale's amount, sellers only", "MOF/STA 2008",
         until=D("2023-08-27")),
    Rule("STAMP_DUTY_0_05", "stamp duty 0.05% of a sale's amount, sellers only", "MOF/STA announcement 2023 No.39",
         since=D("2023-08-28")),
    Rule("TRANSFER_FEE", "transfer fee 0.001% of the amount, both sides", "CSDC fee schedule",
         since=D("2022-04-29")),
    Rule("COMMISSION_MIN", "commission at the contract rate with a per-order minimum (default 0.025%, 5 yuan)",
         "broker contract"),
    Rule("FUNDS_NO_STAMP_OR_TRANSFER", "funds (ETFs) pay neither stamp duty nor transfer fee", "MOF/CSDC"),
    # ----- sessions
    Rule("CLOSED_OUTSIDE_SESSIONS", "no orders outside 09:15–11:30 and 13:00–15:00 (MARKET_CLOSED)",
         "exchange trading hours"),
    Rule("LUNCH_BREAK_CLOSED", "no orders 11:30–13:00", "exchange trading hours"),
    Rule("HOLIDAYS_CLOSED", "no trading on weekends and announced holiday closures", "yearly closure notices"),
    Rule("NO_CANCEL_0920_0925", "cancels are not taken 09:20–09:25", "SZSE rules 3.3.7"),
    Rule("NO_CANCEL_CLOSING_AUCTION", "cancels are not taken 14:57–15:00", "SZSE rules 3.3.7"),
    Rule("MARKET_ORDERS_CONTINUOUS_ONLY", "market orders only in the continuous auction", "SSE 3.3.5; SZSE 3.3.4"),
    Rule("OPENING_AUCTION_ONE_PRICE", "orders of the opening call auction trade at one price at 09:25",
         "exchange call-auction rules"),
    Rule("CLOSING_AUCTION_ONE_PRICE", "orders resting at 14:57 and those of the closing auction trade at one "
         "price at 15:00", "exchange call-auction rules", since=D("2018-08-20")),
    Rule("DAY_END_EXPIRES_ORDERS", "orders still open after the close expire (canceled / part-canceled)",
         "exchange rules: orders are valid for the day"),
    Rule("DAY_ROLL_UNLOCKS_T1", "on the next trading day yesterday's buys become sellable", "SZSE rules 3.1.4"),
    # ----- matching and order types
    Rule("LIMIT_CROSSES_LEVELS_AND_RESTS", "a limit order takes the book level by level at level prices, "
         "the rest rests and fills as later quotes trade through it, in parts", "price-time priority"),
    Rule("MARKET_BEST5_CANCEL", "best-5 then cancel (SH/BJ 42, SZ 47)", "xtconstant; SSE/SZSE market orders"),
    Rule("MARKET_BEST5_LIMIT", "SH/BJ best-5 then the rest rests as a limit at the last fill price (43)",
         "xtconstant; SSE market orders"),
    Rule("MARKET_COUNTERPARTY_BEST", "counter-party best price (44); refused when the opposite side is empty",
         "xtconstant; SSE/SZSE market orders"),
    Rule("MARKET_OWN_BEST", "own-side best price (45); refused when the own side is empty",
         "xtconstant; SSE/SZSE market orders"),
    Rule("MARKET_SZ_IOC", "SZ immediate-or-cancel across all levels (46)", "xtconstant; SZSE 3.3.4"),
    Rule("MARKET_SZ_FOK", "SZ fill-or-kill (48): all at once or nothing", "xtconstant; SZSE 3.3.4"),
    Rule("MARKET_TYPE_PER_EXCHANGE", "a market type the exchange lacks is refused (ORDER_TYPE_UNSUPPORTED)",
         "xtconstant"),
    Rule("MARKET_PROTECTIVE_PRICE", "SH/BJ best-5 market orders (42, 43) trade no worse than the protective "
         "price (0 ⇒ the daily limit); own-best and counterparty-best (44, 45) and SZ market orders take "
         "none: a price is refused, and they are costed at the daily limit", "QMT order docs; SSE/SZSE market orders"),
    Rule("STATUS_PATH", "xtquant status path: 48→50→55→56 on fills, 51→54 or 52→53 on cancel, 57 on refusal",
         "xtconstant order status"),
    Rule("PUSH_ORDER", "pushes per change in xtquant's order: order, trade, position, asset; errors with "
         "xtquant's error fields", "xttrader callbacks"),
)

BY_ID: dict[str, Rule] = {r.id: r for r in RULES}


def in_force(on: date) -> list[Rule]:
    return [r for r in RULES if r.in_force(on)]
