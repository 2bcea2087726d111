"""Paper accounts: any number, each with its own cash and positions; positions seeded in config are
sellable on day one and seeded only once."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_worker, open_session

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import ConfigError, parse_config

pytestmark = pytest.mark.anyio

TWO = {
    "accounts": {
        "sim": {"account_id": "88000001", "positions": {"sh600000": 1000, "000001": 500}},
        "small": {"account_id": "88000002", "initial_cash": 50000},
    }
}


async def test_seeded_positions_are_sellable_on_day_one_and_each_account_is_its_own(
    clock: ManualClock, tmp_path: Path,
) -> None:
    worker = make_worker(parse_config(TWO), tmp_path / "h", clock)
    async with open_session(worker, clock) as s:
        pos = {p["code"]: p for p in (await s.ok("get_positions", account="sim"))["positions"]}
        assert {c: (p["volume"], p["can_use_volume"]) for c, p in pos.items()} == {
            "600000.SH": (1000, 1000), "000001.SZ": (500, 500)}
        inst = await s.ok("get_instrument", code="600000.SH")
        assert pos["600000.SH"]["avg_price"] == inst["pre_close"]  # bought "before today" at the last close
        assert (await s.ok("get_positions", account="small"))["positions"] == []
        assert (await s.ok("get_asset", account="small"))["cash"] == 50000
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        sold = await s.ok("place_order", account="sim", code="600000.SH", side="sell", volume=1000,
                          price=q["bid_prices"][4])
        assert sold["order"]["status"] == "succeeded"
        q2 = (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]
        err = await s.error("place_order", account="small", code="000001.SZ", side="sell", volume=100,
                            price=q2["bid_prices"][0])
        assert err["code"] == "INSUFFICIENT_POSITION"
    await worker.close()

    worker = make_worker(parse_config(TWO), tmp_path / "h", clock)  # a restart does not seed again
    async with open_session(worker, clock) as s:
        codes = [p["code"] for p in (await s.ok("get_positions", account="sim"))["positions"]]
        assert codes == ["000001.SZ"]
    await worker.close()


def test_seeded_position_with_a_bad_code_or_volume_names_the_key(clock: ManualClock, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"accounts\.sim\.positions"):
        parse_config({"accounts": {"sim": {"account_id": "1", "positions": {"60000X": 100}}}})
    with pytest.raises(ConfigError, match=r"accounts\.sim\.positions"):
        parse_config({"accounts": {"sim": {"account_id": "1", "positions": {"600000": 0}}}})
    cfg = parse_config({"accounts": {"sim": {"account_id": "1", "positions": {"601318.SH": 100}}}})
    with pytest.raises(ConfigError, match=r"accounts\.sim\.positions.*601318\.SH"):
        make_worker(cfg, tmp_path / "h", clock)
