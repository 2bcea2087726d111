"""The simulator's instruments. Real codes carry their real names; made-up ones say (模拟)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class Listing:
    code: str
    name: str
    base_price: Decimal       # price on the first simulated day
    daily_vol: float          # stdev of the daily log return
    sectors: tuple[str, ...]
    st: bool = False
    suspended: bool = False
    t_plus: int = 1
    listed: date | None = None    # a new listing: no data before, no daily limit in its first days
    limit_up_every: int = 0       # every n-th trading day closes sealed at the up limit


A = "沪深A股"
UNIVERSE: tuple[Listing, ...] = (
    Listing("600000.SH", "浦发银行", Decimal("10.50"), 0.015, (A, "上证A股", "银行")),
    Listing("600519.SH", "贵州茅台", Decimal("1450.00"), 0.015, (A, "上证A股", "白酒")),
    Listing("000001.SZ", "平安银行", Decimal("11.20"), 0.016, (A, "深证A股", "银行")),
    Listing("300750.SZ", "宁德时代", Decimal("260.00"), 0.025, (A, "深证A股", "创业板")),
    Listing("688981.SH", "中芯国际", Decimal("95.00"), 0.03, (A, "上证A股", "科创板")),
    Listing("510300.SH", "沪深300ETF", Decimal("4.100"), 0.01, ("沪深ETF",)),
    Listing("830799.BJ", "艾融软件", Decimal("28.00"), 0.035, ("北证A股",)),
    Listing("600898.SH", "ST示例(模拟)", Decimal("3.20"), 0.02, (A, "上证A股", "风险警示"), st=True),
    Listing("000029.SZ", "停牌示例(模拟)", Decimal("8.80"), 0.0, (A, "深证A股"), suspended=True),
    Listing("518880.SH", "黄金ETF", Decimal("5.200"), 0.008, ("沪深ETF",), t_plus=0),
    Listing("002888.SZ", "涨停示例(模拟)", Decimal("12.00"), 0.02, (A, "深证A股"), limit_up_every=3),
    Listing("688799.SH", "新股示例(模拟)", Decimal("30.00"), 0.04, (A, "上证A股", "科创板"),
            listed=date(2026, 11, 16)),
)
