"""Configuration: TOML, validated; unknown keys are an error that names the key.

The file is $QMT_MCP_CONFIG if set, else $QMT_MCP_HOME/config.toml; with neither present the
embedded defaults apply (one paper account `sim` on the simulator). Secrets come from environment
variables named here, never from the file.
"""

from __future__ import annotations

import os
import tomllib
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from .domain.codes import normalize_code
from .domain.errors import InvalidArgument
from .domain.fees import FeeSchedule
from .domain.risk import RiskLimits


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    transport: Literal["stdio", "streamable-http", "sse"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=1, le=65535)
    token_env: str = "QMT_MCP_TOKEN"
    allowed_origins: list[str] = []
    allowed_hosts: list[str] = []  # Host headers to accept besides loopback, e.g. ["mcp.example.com:*"]
    confirm_human: Literal["off", "if_supported", "required"] = "off"


class WorkerConfig(_Strict):
    url: str = Field("", pattern=r"^(https?://[^/\s]+(/\S*)?)?$")  # empty: spawn a local worker
    token_env: str = "QMT_WORKER_TOKEN"
    # With url: where the person's CLI and console find their copy of that worker's operator.key
    # (operator_link.py); empty: operator.key in this state dir. Never read by the MCP server.
    operator_key_file: str = ""
    backend: Literal["sim", "xtquant"] = "sim"
    call_timeout_s: float = Field(10, gt=0)
    submit_timeout_s: float = Field(30, gt=0)
    reconcile_interval_s: float = Field(30, gt=0)  # the timer; also at start and after a reconnect
    heartbeat_s: float = Field(5, gt=0, le=60)      # event stream heartbeat when nothing happens
    retain_days: int = Field(400, ge=1, le=36500)   # days of detail the journal keeps; older ones are folded


class XtquantConfig(_Strict):
    qmt_path: str = ""
    session_id: int = 0
    native: Literal["real", "sim"] = "real"     # sim: the simulator beneath xtquant's own Python layer
    breaker_failures: int = Field(3, ge=1, le=100)       # consecutive timeouts that open an API's breaker
    breaker_cooldown_s: float = Field(30, gt=0, le=3600)  # how long it stays open before one trial call


class ConfirmConfig(_Strict):
    ttl_s: int = Field(120, ge=5, le=3600)


class ApprovalConfig(_Strict):
    """Whose orders wait for a person (CONTRACT.md "A person in the loop: approvals")."""

    human: Literal["off", "live", "all"] = "off"   # live: accounts with live = true; all: paper ones too
    above_value: Decimal = Field(Decimal(0), ge=0)  # yuan: only orders whose amount exceeds it wait
    channels: list[Literal["console", "cli", "elicitation", "app"]] = ["console", "cli", "elicitation", "app"]
    timeout_s: float = Field(300, gt=0, le=86400)  # an undecided approval expires; nothing is sent


class RiskConfig(_Strict):
    enabled: bool = True
    max_order_value: Decimal = Decimal(100000)
    max_daily_turnover: Decimal = Decimal(500000)
    max_orders_per_minute: int = Field(10, ge=0)
    max_daily_orders: int = Field(100, ge=0)
    max_positions: int = Field(10, ge=0)
    max_position_pct: Decimal = Decimal(30)
    max_daily_loss: Decimal = Decimal(50000)
    kill_switch: bool = False
    blocked_codes: list[str] = []

    @field_validator("blocked_codes")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        try:
            return [normalize_code(c) for c in v]
        except InvalidArgument as exc:
            raise ValueError(exc.message) from exc

    def limits(self) -> RiskLimits:
        return RiskLimits(
            enabled=self.enabled, max_order_value=self.max_order_value,
            max_daily_turnover=self.max_daily_turnover, max_orders_per_minute=self.max_orders_per_minute,
            max_daily_orders=self.max_daily_orders, max_positions=self.max_positions,
            max_position_pct=self.max_position_pct, max_daily_loss=self.max_daily_loss,
            kill_switch=self.kill_switch, blocked_codes=frozenset(self.blocked_codes),
        )


class AccountConfig(_Strict):
    account_id: str = Field(min_length=1)
    account_type: Literal["STOCK", "CREDIT"] = "STOCK"
    live: bool = False
    initial_cash: Decimal | None = None      # sim only; default sim.initial_cash
    positions: dict[str, int] = {}           # sim only: shares held from before day one, {"600000.SH" = 1000}
    risk: dict[str, Any] | None = None       # overrides of [risk], same keys

    @field_validator("positions")
    @classmethod
    def _positions(cls, v: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for code, volume in v.items():
            try:
                canon = normalize_code(code)
            except InvalidArgument as exc:
                raise ValueError(exc.message) from exc
            if volume <= 0:
                raise ValueError(f"{code}: a seeded position needs a positive number of shares")
            out[canon] = out.get(canon, 0) + volume
        return out


class SimConfig(_Strict):
    seed: int = 42
    initial_cash: Decimal = Decimal(1000000)
    clock: Literal["continuous", "exchange"] = "continuous"
    commission_rate: Decimal = Decimal("0.00025")
    commission_min: Decimal = Decimal(5)
    poll_interval_s: float = Field(0.5, gt=0, le=10)
    replay_dir: str | None = None          # CSV files of your own ticks or 1m bars, one per code
    start_at: datetime | None = None       # simulated time starts here (to rehearse a past day)
    speed: float = Field(1.0, gt=0, le=3600)   # simulated seconds per real second, with start_at

    def fee_schedule(self) -> FeeSchedule:
        return FeeSchedule(self.commission_rate, self.commission_min)


def _default_accounts() -> dict[str, AccountConfig]:
    return {"sim": AccountConfig(account_id="88000001")}


class Config(_Strict):
    server: ServerConfig = ServerConfig()
    worker: WorkerConfig = WorkerConfig()
    xtquant: XtquantConfig = XtquantConfig()
    confirm: ConfirmConfig = ConfirmConfig()
    accounts: dict[str, AccountConfig] = Field(default_factory=_default_accounts)
    risk: RiskConfig = RiskConfig()
    approval: ApprovalConfig = ApprovalConfig()
    sim: SimConfig = SimConfig()
    _limits: dict[str, RiskLimits] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        """The checks across sections, once the sections are valid; then each account's risk limits
        ([risk] with its overrides), validated once here into the shape orders read. Raises
        ConfigError naming the key."""
        if not self.accounts:
            raise ConfigError("invalid configuration: at least one [accounts.NAME] is needed")
        seen: dict[tuple[str, str], str] = {}
        for name, acct in self.accounts.items():
            key = (acct.account_id, acct.account_type)
            if key in seen:
                # Two names for one account: the broker's pushes land under one of them, and orders
                # through a paper name would skip the confirm (and the person) a live name asks for.
                raise ConfigError(f"invalid configuration: accounts '{seen[key]}' and '{name}' are the same "
                                  f"{acct.account_type} account ({mask_account_id(acct.account_id)}); keep one name")
            seen[key] = name
            merged = {**self.risk.model_dump(), **(acct.risk or {})}
            try:
                self._limits[name] = RiskConfig.model_validate(merged).limits()
            except ValidationError as exc:
                raise ConfigError(_describe(exc, prefix=f"accounts.{name}.risk")) from exc

    def risk_for(self, account: str) -> RiskLimits:
        """The limits of a configured account (KeyError for another name)."""
        return self._limits[account]


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message names the key."""


def home_dir() -> Path:
    return Path(os.environ.get("QMT_MCP_HOME") or Path.home() / ".qmt_mcp")


def config_path() -> Path:
    explicit = os.environ.get("QMT_MCP_CONFIG")
    return Path(explicit) if explicit else home_dir() / "config.toml"


def _describe(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        key = f"{prefix}.{key}" if prefix else key
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}'")
        else:
            parts.append(f"'{key}': {err['msg']}")
    return "invalid configuration: " + "; ".join(parts)


def load_config(path: Path | None = None) -> Config:
    """The configuration in force; embedded defaults when no file exists (and none was named)."""
    named = path is not None or bool(os.environ.get("QMT_MCP_CONFIG"))
    p = path or config_path()
    if not p.exists():
        if named:
            raise ConfigError(f"config file not found: {p}")
        return Config()
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {p}: {exc}") from exc
    return parse_config(data)


def parse_config(data: dict[str, Any]) -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    return cfg   # (the checks across sections, and the risk limits, ran in Config.model_post_init)


def mask_account_id(account_id: str) -> str:
    return "****" + account_id[-4:] if len(account_id) > 4 else "****"
