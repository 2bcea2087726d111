"""Replaying a person's own CSV data: 1-minute bars come back exactly, ticks with a book quote and
match as written, and a bad file is refused at start with its name and line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from conftest import SessionFactory, make_worker

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import ConfigError, parse_config
from qmt_mcp.domain.timeutil import CN_TZ

pytestmark = pytest.mark.anyio

BARS = """time,open,high,low,close,volume,amount
2024-03-01 09:30:00,10.00,10.05,9.98,10.03,12000,120360.00
2024-03-01 09:31:00,10.03,10.03,9.95,9.96,8000,79760.00
2024-03-01 09:32:00,9.96,10.10,9.96,10.08,15000,150600.00
"""
TICKS = """time,last,volume,amount,bid1,bid1_volume,ask1,ask1_volume,ask2,ask2_volume
2024-03-01 09:30:03,11.20,1000,11200,11.19,500,11.21,300,11.22,900
2024-03-01 09:30:06,11.21,1800,20168,11.20,400,11.22,700,11.23,900
"""


def replay_config(folder: Path) -> dict[str, object]:
    return {"sim": {"replay_dir": str(folder), "clock": "exchange"}, "risk": {"enabled": False}}


async def test_replayed_minute_bars_come_back_exactly_through_get_klines(
    session_with: SessionFactory, clock: ManualClock, tmp_path: Path
) -> None:
    (tmp_path / "600000.SH.csv").write_text(BARS, encoding="utf-8")
    clock.set(datetime(2024, 3, 1, 9, 40, tzinfo=CN_TZ))
    async with session_with(**replay_config(tmp_path)) as s:
        bars = (await s.ok("get_klines", code="600000.SH", period="1m", count=10))["bars"]
        rows = [line.split(",") for line in BARS.strip().splitlines()[1:]]
        got = [(b["open"], b["high"], b["low"], b["close"], b["volume"], b["amount"]) for b in bars]
        assert got == [(*(float(x) for x in r[1:5]), int(r[5]), float(r[6])) for r in rows]
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        assert (q["last"], q["volume"], q["high"], q["low"]) == (10.08, 35000, 10.10, 9.95)


async def test_replayed_ticks_quote_their_book_and_orders_match_against_it(
    session_with: SessionFactory, clock: ManualClock, tmp_path: Path
) -> None:
    (tmp_path / "000001.SZ.csv").write_text(TICKS, encoding="utf-8")
    clock.set(datetime(2024, 3, 1, 9, 30, 4, tzinfo=CN_TZ))
    async with session_with(**replay_config(tmp_path)) as s:
        q = (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]
        assert q["ask_prices"][:2] == [11.21, 11.22] and q["ask_volumes"][:2] == [300, 900]
        order = (await s.ok("place_order", account="sim", code="000001.SZ", side="buy", volume=500,
                            price=11.21))["order"]
        assert order["status"] == "part_succ" and order["traded_volume"] == 300
        ticks = (await s.ok("get_ticks", code="000001.SZ", start="20240301", end="20240302"))["ticks"]
        assert [t["last"] for t in ticks] == [11.20]   # the second tick is still in the future


def test_a_malformed_replay_file_is_refused_with_its_name_and_line(tmp_path: Path) -> None:
    (tmp_path / "600000.SH.csv").write_text(BARS.replace("10.05,9.98", "9.00,9.98"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"600000\.SH\.csv line 2: high/low"):
        make_worker(parse_config(replay_config(tmp_path)), None, ManualClock(datetime(2024, 3, 1, tzinfo=CN_TZ)))
    (tmp_path / "600000.SH.csv").write_text("when,price\n1,2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="header must hold"):
        make_worker(parse_config(replay_config(tmp_path)), None, ManualClock(datetime(2024, 3, 1, tzinfo=CN_TZ)))
