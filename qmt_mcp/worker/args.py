"""Argument checks for the worker API: every bad input becomes INVALID_ARGUMENT naming the argument."""

from __future__ import annotations

from typing import Any

from ..domain.errors import InvalidArgument


def opt_int(args: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or not lo <= raw <= hi:
        raise InvalidArgument(f"{name} must be a whole number from {lo} to {hi}", details={"argument": name})
    return raw


def opt_float(args: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    raw = args.get(name)
    if raw is None:
        return default
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not lo <= raw <= hi:
        raise InvalidArgument(f"{name} must be a number from {lo} to {hi}", details={"argument": name})
    return float(raw)


def req_str(args: dict[str, Any], name: str, max_len: int = 64) -> str:
    raw = args.get(name)
    if not isinstance(raw, str) or not raw.strip() or len(raw) > max_len:
        raise InvalidArgument(f"{name} is required (a string of at most {max_len} characters)",
                              details={"argument": name})
    return raw.strip()


def opt_str(args: dict[str, Any], name: str, max_len: int = 64) -> str | None:
    if args.get(name) is None:
        return None
    return req_str(args, name, max_len)


def opt_bool(args: dict[str, Any], name: str, default: bool = False) -> bool:
    raw = args.get(name)
    if raw is None:
        return default
    if not isinstance(raw, bool):
        raise InvalidArgument(f"{name} must be true or false", details={"argument": name})
    return raw
