"""Time in Asia/Shanghai (+08:00, no DST since 1991, so a fixed offset is exact) and input parsing."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from .errors import InvalidArgument

CN_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


def to_cn(dt: datetime) -> datetime:
    return dt.astimezone(CN_TZ)


def iso(dt: datetime) -> str:
    """Output form: ISO-8601 with +08:00, to the second (or ms when it has them)."""
    local = dt.astimezone(CN_TZ)
    spec = "milliseconds" if local.microsecond else "seconds"
    return local.isoformat(timespec=spec)


def parse_time(raw: object, argument: str) -> datetime:
    """Accept YYYYMMDD, YYYYMMDDHHMMSS and ISO-8601 (naive means Asia/Shanghai)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidArgument(f"{argument} must be a time string", details={"argument": argument})
    text = raw.strip()
    try:
        if text.isdigit() and len(text) == 8:
            return datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), tzinfo=CN_TZ)
        if text.isdigit() and len(text) == 14:
            return datetime(
                int(text[:4]),
                int(text[4:6]),
                int(text[6:8]),
                int(text[8:10]),
                int(text[10:12]),
                int(text[12:14]),
                tzinfo=CN_TZ,
            )
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidArgument(
            f"{argument} is not a time: {text[:32]!r}",
            hint="Use YYYYMMDD, YYYYMMDDHHMMSS or ISO-8601 such as 2026-11-20T10:30:00+08:00.",
            details={"argument": argument},
        ) from exc
    return dt.replace(tzinfo=CN_TZ) if dt.tzinfo is None else dt


def cn_date(dt: datetime) -> date:
    return dt.astimezone(CN_TZ).date()


def iso_ms(dt: datetime) -> str:
    """Fixed-width ISO form (always milliseconds) so stored stamps sort as text."""
    return dt.astimezone(CN_TZ).isoformat(timespec="milliseconds")
