"""Proof that a person confirmed one exact live request, checked by the worker itself.

The confirm token proves the agent previewed the order; it does not prove a person agreed. Where
config asks for a person (`server.confirm_human = "required"` in the worker's own config, or the
server asking for one on this request), the worker, not the server, decides that one is needed:

1. `check_order` / `check_reset` run the whole decision (validation, token, risk) without sending,
   and answer a *person proof*: an HMAC-signed statement bound to the tool, the request's fields and
   the confirm token's id. Nobody is asked before those checks pass.
2. The server shows the person the request and, only if they confirm, sends the real call with the
   proof. The worker verifies it under the order lock, where the token is also spent, so a proof
   works once, for that request only, and never without its token.

An agent never sees a proof (the server keeps it), so no sequence of tool calls can produce one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ..config import AccountConfig, Config
from ..domain.errors import ConfirmError, ErrorCode
from .confirm import ConfirmTokens

PersonAsk = Literal["required", "if_supported"]


def person_needed(cfg: Config, acct: AccountConfig, person: str | None) -> bool:
    """A live request needs a person when the worker's config says so, or the server asks for one
    (`person` "ask": it may ask for more than the worker's config, never for less)."""
    if not acct.live:
        return False
    return cfg.server.confirm_human == "required" or person == "ask"


class PersonProofs:
    """Proofs ride the confirm-token machinery (same secret, same expiry) under their own tool names,
    so a confirm token can never pass as a proof or the other way round."""

    def __init__(self, tokens: ConfirmTokens) -> None:
        self._tokens = tokens

    def issue(self, tool: str, fields: dict[str, str], token_id: str, now: datetime) -> tuple[str, str]:
        return self._tokens.issue(f"person:{tool}", {**fields, "token_id": token_id}, now)

    def verify(self, proof: str | None, tool: str, fields: dict[str, str], token_id: str, now: datetime) -> str:
        """The proof's own id; raises ConfirmError (CONFIRM_DECLINED) unless `proof` confirms exactly
        this request. A proof bound to a confirm token is spent with it; one without (a paper order's
        approval) is spent by the caller recording this id, so it works once."""
        if proof is None:
            raise ConfirmError(
                "a person must confirm this live request, and no confirmation came with it",
                code=ErrorCode.CONFIRM_DECLINED,
                hint="Use an MCP client that can ask the person (elicitation), or act by hand.",
                details={"reason": "no_person_confirmation"},
            )
        try:
            return self._tokens.verify(proof, f"person:{tool}", {**fields, "token_id": token_id}, now)
        except ConfirmError as exc:
            raise ConfirmError(
                "the person's confirmation does not fit this request", code=ErrorCode.CONFIRM_DECLINED,
                hint="Preview again and let the person confirm the order that is sent.",
                details={"reason": "person_confirmation_invalid", "why": exc.code.value},
            ) from exc
