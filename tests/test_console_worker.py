"""What the worker answers the operator console, without a browser: each pending approval listed with the
preview its approval will meet (checks, fees, risk, its own pending record not counted against it), and
the audit chain's status (the check `qmt-mcp audit verify` makes, with the record count and head hash),
read with the ordinary worker token, like the console's other reads."""

from __future__ import annotations

import json

import pytest
from conftest import TOKEN, Session, SessionFactory

from qmt_mcp.calls import ListApprovalsArgs
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.server.worker_client import WorkerClient

pytestmark = pytest.mark.anyio


async def _audit_status(s: Session, token: str = TOKEN) -> dict[str, object]:
    assert s.worker_sock is not None
    client = WorkerClient.for_uds(str(s.worker_sock), token)
    try:
        return await client.call("audit_status", {})
    finally:
        await client.aclose()


async def test_a_pending_approval_is_listed_with_the_preview_its_approval_will_meet(
    session_with: SessionFactory,
) -> None:
    async with session_with(approval={"human": "all"}) as s:
        args = await s.marketable_buy("pv-1")
        assert (await s.ok("place_order", **args))["order"]["status"] == "pending_approval"
        (listed,) = (await s.worker.service.approvals.list_approvals(ListApprovalsArgs()))["approvals"]
        p = listed["preview"]
        fields = {k: args[k] for k in ("account", "code", "side", "volume", "price")}
        agent = await s.ok("preview_order", **fields)
        assert p["would_accept"] is True and p["estimate"] == agent["estimate"]
        assert [c["rule"] for c in p["checks"]] == [c["rule"] for c in agent["checks"]]
        assert [d["rule"] for d in p["risk"]["decisions"]] == [d["rule"] for d in agent["risk"]["decisions"]]
        # The agent's preview counts the pending order as an open one; its approval does not count it twice.
        assert agent["risk"]["usage"]["orders_today"] == 1 and p["risk"]["usage"]["orders_today"] == 0


async def test_audit_status_says_intact_with_count_and_head_then_names_the_first_damaged_line(
    session: Session,
) -> None:
    for cid in ("au-1", "au-2"):   # two audited calls: the trail has two records
        await session.ok("place_order", **await session.marketable_buy(cid))
    trail = session.worker.audit.path
    assert trail is not None
    lines = trail.read_text(encoding="utf-8").splitlines()
    status = await _audit_status(session)
    assert status["intact"] is True and status["records"] == len(lines) == 2
    assert status["head_hash"] == json.loads(lines[-1])["hash"] and status["anchored_records"] == 2
    first = json.loads(lines[0])
    first["args"]["volume"] = 999_999   # edited afterwards
    trail.write_text("\n".join([json.dumps(first, ensure_ascii=False), *lines[1:]]) + "\n", encoding="utf-8")
    status = await _audit_status(session)
    assert status["intact"] is False and str(status["found"]).startswith("line 1")
    with pytest.raises(QmtError) as refused:   # a read, but still only for a holder of the worker token
        await _audit_status(session, token="not-the-token")
    assert refused.value.code is ErrorCode.UNAUTHORIZED
