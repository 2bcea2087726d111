"""Configurations that would weaken a safeguard are refused at load, naming what is wrong."""

from __future__ import annotations

import pytest

from qmt_mcp.config import ConfigError, parse_config


def test_one_account_under_a_live_and_a_paper_name_is_refused() -> None:
    """Orders through the paper name would skip the live account's confirm (and the person)."""
    with pytest.raises(ConfigError) as refused:
        parse_config({"accounts": {"real": {"account_id": "99000002", "live": True},
                                   "practice": {"account_id": "99000002"}}})
    assert "99000002" not in str(refused.value)  # ids are masked even in errors
    assert "practice" in str(refused.value) and "real" in str(refused.value)


def test_one_account_under_two_names_is_refused_even_when_both_are_paper() -> None:
    with pytest.raises(ConfigError):
        parse_config({"accounts": {"a": {"account_id": "88000001"}, "b": {"account_id": "88000001"}}})


def test_the_same_id_as_a_stock_and_a_credit_account_is_two_accounts() -> None:
    cfg = parse_config({"accounts": {"cash": {"account_id": "88000001"},
                                     "margin": {"account_id": "88000001", "account_type": "CREDIT"}}})
    assert set(cfg.accounts) == {"cash", "margin"}
