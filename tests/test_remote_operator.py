"""A person decides on a standalone worker from another state dir, as on a Windows host through an SSH
tunnel: a real `qmt-mcp worker --host 127.0.0.1 --port N` on state dir A; the person's state dir B has
only a config with `[worker] url` and a copy of A's operator.key. From B, `qmt-mcp approvals` /
`approve` and `qmt-mcp console` reach it (the agent a real MCP client over stdio against a `qmt-mcp
serve` on B with worker.url), the MCP server's worker token decides nothing, and a missing or loose
key file, a wrong token or a closed tunnel each fail with a typed error saying what to fix.
One worker for the module: each test leaves no approval pending."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from test_approvals_cli import CONFIG, _buy, _listed
from test_operator_controls import _audited, _cli, _home
from workerproc import WorkerProcess

from qmt_mcp.config import parse_config
from qmt_mcp.console.app import Worker
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.server.supervisor import _free_port

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="POSIX key file modes")]
# Approved means sent. Whether it also filled is the market's: the buy is at the ask when the agent
# placed it, and the simulated market quotes anew every few seconds while a console starts on a busy
# machine, so by the approval the ask may have moved past it (it then rests, "reported").
SENT = ("reported", "part_succ", "succeeded")
TOKEN = "token-1"   # WorkerProcess(n=1)'s worker token: the MCP server's credential


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"   # module-wide: one worker for every test


@dataclass
class Remote:
    home: Path              # A: the worker's own state dir (the Windows host's)
    worker: WorkerProcess   # its client holds the worker token

    @property
    def url(self) -> str:
        assert self.worker.url is not None
        return self.worker.url

    @property
    def key(self) -> Path:
        return self.home / "operator.key"


@pytest.fixture(scope="module")
async def remote(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Remote]:
    home = _home(tmp_path_factory.mktemp("a"), CONFIG)
    worker = WorkerProcess(home, 1, port=_free_port())
    try:
        with anyio.fail_after(60):
            await worker.ready()
        yield Remote(home, worker)
    finally:
        await worker.stop()


def _person(tmp_path: Path, url: str, key_from: Path | None, extra: str = "") -> Path:
    """B: the person's state dir, with a config naming the remote worker and (`key_from`) a 0600 copy of a key
    file at the default place, as `scp winhost:.qmt_mcp/operator.key` and `chmod 600` leave it."""
    home = _home(tmp_path, f'[worker]\nurl = "{url}"\n{extra}\n{CONFIG}')
    if key_from is not None:
        shutil.copyfile(key_from, home / "operator.key")
        os.chmod(home / "operator.key", 0o600)
    return home


async def _order(r: Remote, cid: str) -> dict[str, Any]:
    got = await r.worker.client.call("get_order", {"account": "sim", "client_order_id": cid})
    return dict(got["order"])


async def test_from_another_state_dir_the_cli_lists_and_approves_an_agents_order_waiting_on_a_standalone_worker(
    remote: Remote, tmp_path: Path,
) -> None:
    b = _person(tmp_path, remote.url, remote.key)
    # The agent's server on B reaches the worker through worker.url with the worker token, as over a tunnel
    # (its calls reuse one kept-alive TCP connection: server/wire.py's still_open on an asyncio socket).
    agent = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                  env={"QMT_MCP_HOME": str(b), "QMT_WORKER_TOKEN": TOKEN})
    out: dict[str, Any] = {}
    with anyio.fail_after(120):
        async with Client(agent) as c:

            async def place() -> None:
                out.update(await _buy(c, "remote-cli-1", wait=45))

            async with anyio.create_task_group() as tg:
                tg.start_soon(place)
                (waiting,) = await _listed(b)   # `qmt-mcp approvals --json` on B
                order = waiting["order"]
                assert (order["client_order_id"], order["status"]) == ("remote-cli-1", "pending_approval")
                rc, decided = await _cli(b, "approve", waiting["approval_id"], "--note", "checked over the tunnel")
                assert rc == 0 and decided["decision"] == "approved", decided
    assert out["ok"] and out["order"]["status"] in SENT and out["order"]["order_id"] is not None
    record = _audited(remote.home, "decide_approval")[-1]
    assert record["by"] == {"operator": True, "channel": "cli"} and record["args"]["note"] == "checked over the tunnel"
    assert not (b / "worker.json").exists()   # nothing was spawned on B: the worker is A's


async def test_the_console_on_another_state_dir_shows_the_remote_workers_pending_approval_and_approves_it(
    remote: Remote, tmp_path: Path,
) -> None:
    # The key kept outside the state dir, named by worker.operator_key_file.
    kept = tmp_path / "keys" / "winhost.key"
    kept.parent.mkdir()
    shutil.copyfile(remote.key, kept)
    os.chmod(kept, 0o600)
    b = _person(tmp_path, remote.url, None, extra=f'operator_key_file = "{kept}"')
    placed = await remote.worker.buy("remote-console-1")   # the agent's order, through the worker API
    approval_id = placed["order"]["approval"]["approval_id"]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = await anyio.open_process([sys.executable, "-m", "qmt_mcp", "console", "--port", str(port)],
                                    env={**os.environ, "QMT_MCP_HOME": str(b), "QMT_WORKER_TOKEN": TOKEN})
    try:
        with anyio.fail_after(60):
            assert proc.stdout is not None
            line = b""
            while not line.endswith(b"\n"):   # the login URL is its first line
                line += await proc.stdout.receive()
            login_url = line.decode().split("open ", 1)[1].split()[0]
            async with httpx.AsyncClient(base_url=base) as http:
                for _ in range(200):   # another process: polled, bounded
                    try:
                        await http.get("/")
                        break
                    except httpx.TransportError:
                        await anyio.sleep(0.05)
                assert (await http.get(login_url)).status_code == 303   # the session cookie, kept by the client
                # The live feed relays the remote worker's event stream, read with the worker token.
                async with http.stream("GET", "/events") as feed:
                    seen = b""
                    async for chunk in feed.aiter_bytes():
                        seen += chunk
                        if b"event: hello" in seen or b"event: down" in seen:
                            break
                assert b"event: hello" in seen, seen
                page = (await http.get("/")).text
                box = page.split(f"data-approval-id='{approval_id}'", 1)[1].split("class='approval'", 1)[0]
                assert "remote-console-1" in box and "data-action='approve'" in box
                match = re.search(r"name='csrf' value='([^']+)'", page)
                assert match is not None
                form = {"csrf": match.group(1), "approval_id": approval_id, "decision": "approve",
                        "note": "seen in the console"}
                assert (await http.post("/action/decide", data=form)).status_code == 403   # no Origin: unchanged
                assert (await http.post("/action/decide", data=form, headers={"Origin": base})).status_code == 303
                assert f"approval {approval_id} approved" in (await http.get("/")).text
    finally:
        proc.terminate()
        with anyio.fail_after(10):
            await proc.wait()
        await proc.aclose()
    order = await _order(remote, "remote-console-1")
    assert order["status"] in SENT and order["order_id"] is not None
    record = _audited(remote.home, "decide_approval")[-1]
    assert record["by"] == {"operator": True, "channel": "console"} and record["args"]["note"] == "seen in the console"


async def test_the_mcp_servers_worker_token_is_refused_where_a_person_decides_and_the_copied_key_is_taken(
    remote: Remote, tmp_path: Path,
) -> None:
    placed = await remote.worker.buy("remote-refused-1")
    approval_id = placed["order"]["approval"]["approval_id"]
    decide = {"approval_id": approval_id, "decision": "approve", "channel": "cli"}
    for call, args in (("list_approvals", {}), ("decide_approval", decide)):
        with pytest.raises(QmtError) as refused:
            await remote.worker.client.call(call, args)
        assert refused.value.code is ErrorCode.UNAUTHORIZED, call
    # The worker token where the key goes (the server's credential, say copied by mistake): refused, named.
    b = _person(tmp_path, remote.url, None)
    (b / "operator.key").write_text(TOKEN + "\n", encoding="utf-8")
    os.chmod(b / "operator.key", 0o600)
    rc, out = await _cli(b, "approve", approval_id)
    assert rc == 1 and out["error"]["code"] == "UNAUTHORIZED"
    assert f"{b / 'operator.key'} is not the operator key of the worker at {remote.url}" in out["error"]["hint"]
    assert (await _order(remote, "remote-refused-1"))["status"] == "pending_approval"   # nothing was decided
    shutil.copyfile(remote.key, b / "operator.key")   # the worker's own key: the same command is taken
    rc, out = await _cli(b, "deny", approval_id, "--note", "not today")
    assert rc == 0 and out["order"]["status"] == "denied"
    assert (await _order(remote, "remote-refused-1"))["order_id"] is None


async def test_a_missing_or_loose_key_a_missing_or_wrong_token_and_a_closed_tunnel_each_say_what_to_fix(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = _person(tmp_path, remote.url, None)
    key = b / "operator.key"
    rc, out = await _cli(b, "approvals")
    assert rc == 1 and out["error"]["code"] == "UNAUTHORIZED", out
    assert out["error"]["message"] == f"no operator key at {key} for the worker at {remote.url} (worker.url)"
    assert "copy operator.key from that worker's state dir" in out["error"]["hint"]
    assert f"chmod 600 {key}" in out["error"]["hint"]
    shutil.copyfile(remote.key, key)
    os.chmod(key, 0o644)   # a copy others can read: the key may already be theirs
    rc, out = await _cli(b, "approvals")
    assert rc == 1 and out["error"]["code"] == "UNAUTHORIZED"
    assert "can be read by other users" in out["error"]["message"]
    assert f"chmod 600 {key}" in out["error"]["hint"]
    os.chmod(key, 0o600)
    rc, out = await _cli(b, "approvals")
    assert rc == 0 and out["approvals"] == []   # the same file, private now, is taken

    # The console's reads need the worker token from $worker.token_env.
    console = Worker(b, parse_config({"worker": {"url": remote.url}}).worker)
    monkeypatch.delenv("QMT_WORKER_TOKEN", raising=False)
    with pytest.raises(QmtError) as unset:
        await console.call("list_accounts", {})
    assert unset.value.code is ErrorCode.UNAUTHORIZED and "$QMT_WORKER_TOKEN is not set" in unset.value.message
    monkeypatch.setenv("QMT_WORKER_TOKEN", "not-the-token")
    with pytest.raises(QmtError) as wrong:
        await console.call("list_accounts", {})
    assert wrong.value.code is ErrorCode.UNAUTHORIZED and "$QMT_WORKER_TOKEN is not the token" in wrong.value.hint
    monkeypatch.setenv("QMT_WORKER_TOKEN", TOKEN)
    assert [a["name"] for a in (await console.call("list_accounts", {}))["accounts"]] == ["sim"]

    # Nothing listens at worker.url (the tunnel is down): WORKER_UNAVAILABLE, naming the tunnel.
    (tmp_path / "closed").mkdir()
    closed = _person(tmp_path / "closed", f"http://127.0.0.1:{_free_port()}", remote.key)
    rc, out = await _cli(closed, "approvals")
    assert rc == 1 and out["error"]["code"] == "WORKER_UNAVAILABLE" and "ssh -N -L" in out["error"]["hint"]
