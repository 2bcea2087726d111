"""A person's controls: the kill switch, the block list and the breaker reset, from the CLI or the console.

They reach the worker with the operator key (`operator.key` in the state dir, 0600), never with the
MCP server's worker token (worker/api.py checks which call needs which), so an agent cannot reach
them by any tool. A change applies to the next order decision, with no restart; it is kept in the
journal (riskbook.Override), recorded as a `risk` event, and audited with the person's note and
channel. The person's own reset needs no confirm token: the token exists to prove an agent's call
was previewed, and here the person is the one asking.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..calls import BlockCodeArgs, KillSwitchArgs, OperatorArgs
from ..domain.codes import normalize_code
from ..domain.events import RiskEvent
from ..domain.timeutil import iso
from ..statedir import PRIVATE_FILE, tighten
from .args import nonblank
from .riskbook import account_view
from .service import WorkerService

KEY_FILE = "operator.key"


def load_operator_key(home: Path | None) -> str:
    """The operator key of the state dir `home`, created (0600) on first use; None: a key for this
    process only (an in-memory worker has no CLI to share it with)."""
    if home is None:
        return secrets.token_urlsafe(32)
    path = home / KEY_FILE
    try:
        # O_EXCL: two workers starting at once cannot both write a key and leave the CLI the wrong one.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        tighten(path)
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)   # left empty by a crash between create and write
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return key


class OperatorCalls:
    def __init__(self, service: WorkerService) -> None:
        self.service = service

    def _change(self, account: str, note: str, channel: str, rule: str, message: str, **fields: Any) -> dict[str, Any]:
        svc = self.service
        now = svc.clock.now()
        current = svc.risk.override(account)
        svc.risk.set_override(account, replace(current, updated_at=iso(now), note=note, channel=channel, **fields))
        svc.journal.append(RiskEvent(account=account, rule=rule, message=f"{message} by a person ({channel}): {note}"),
                           now)
        svc.notify()
        limits = svc.limits_for(account)
        return {"account": account, "kill_switch": limits.kill_switch, "blocked_codes": sorted(limits.blocked_codes),
                "operator": svc.risk.override(account).to_wire()}

    async def set_kill_switch(self, args: KillSwitchArgs) -> dict[str, Any]:
        name, _ = self.service.account(args.account)
        note = nonblank(args.note, "note")
        # Under the order lock: a decision already running finishes with the switch as it found it,
        # and the next one sees the new setting.
        async with self.service.order_lock:
            return self._change(name, note, args.channel, "KILL_SWITCH", "switched on" if args.on else "switched off",
                                kill_switch=args.on)

    async def set_blocked_code(self, args: BlockCodeArgs) -> dict[str, Any]:
        svc = self.service
        name, _ = svc.account(args.account)
        note = nonblank(args.note, "note")
        code = normalize_code(args.code)
        async with svc.order_lock:
            codes = set(svc.limits_for(name).blocked_codes)   # from the list that applies now, the config's at first
            if args.blocked:
                codes.add(code)
            else:
                codes.discard(code)
            what = f"{code} blocked" if args.blocked else f"{code} unblocked"
            return self._change(name, note, args.channel, "SYMBOL_BLOCKED", what, blocked_codes=frozenset(codes))

    async def operator_reset_risk(self, args: OperatorArgs) -> dict[str, Any]:
        svc = self.service
        name, acct = svc.account(args.account)
        note = nonblank(args.note, "note")
        async with svc.order_lock:  # a reset and an order decision never interleave
            view = await account_view(svc.broker, acct.account_id)
            at = svc.risk.reset(name, f"{note} (by a person, {args.channel})", view.total_asset)
        svc.notify()
        return {"account": name, "breaker": {"tripped": False}, "reset_at": at}
