"""Confirm tokens for live accounts: bound to the exact request, single use, expiring, unforgeable.

token = base64url(payload) "." base64url(HMAC-SHA256(secret, payload)); the payload carries a
random id, the expiry and a digest of the bound fields. The expiry is written twice: in the worker's
time (simulated under `sim.start_at`) and in real time, and both must hold, because simulated time
starts over at every restart and would otherwise make an expired token good again. The secret lives
in the worker's state dir and never leaves it. Use is recorded in the journal so a token works once,
across restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from ..domain.errors import ConfirmError, ErrorCode
from ..domain.timeutil import iso


def load_secret(path: Path | None) -> bytes:
    if path is None:
        return secrets.token_bytes(32)
    if path.exists():
        return path.read_bytes()
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _digest(tool: str, fields: dict[str, str]) -> str:
    canon = json.dumps({"tool": tool, **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


class ConfirmTokens:
    def __init__(self, secret: bytes, ttl_s: int, wall: Callable[[], float]) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        self._wall = wall

    def issue(self, tool: str, fields: dict[str, str], now: datetime) -> tuple[str, str]:
        """(token, expires_at ISO)."""
        expires = now + timedelta(seconds=self.ttl_s)
        payload = json.dumps(
            {"id": secrets.token_hex(12), "exp": int(expires.timestamp()), "wexp": int(self._wall() + self.ttl_s),
             "d": _digest(tool, fields)},
            separators=(",", ":"),
        ).encode()
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(mac)}", iso(expires)

    def verify(self, token: str, tool: str, fields: dict[str, str], now: datetime) -> str:
        """The token's id if it is genuine, unexpired and bound to these fields; ConfirmError otherwise.
        Single use is enforced by the caller recording the id."""
        try:
            p64, m64 = token.split(".", 1)
            payload, mac = _unb64(p64), _unb64(m64)
            good = hmac.compare_digest(mac, hmac.new(self._secret, payload, hashlib.sha256).digest())
            body = json.loads(payload) if good else None
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise ConfirmError("the confirm token is not one this worker issued", code=ErrorCode.CONFIRM_INVALID)
        if not hmac.compare_digest(str(body.get("d")), _digest(tool, fields)):
            raise ConfirmError(
                "the request differs from the one the token was issued for", code=ErrorCode.CONFIRM_MISMATCH
            )
        if now.timestamp() > int(body.get("exp", 0)) or self._wall() > int(body.get("wexp", 0)):
            raise ConfirmError("the confirm token has expired", code=ErrorCode.CONFIRM_EXPIRED)
        return str(body["id"])
