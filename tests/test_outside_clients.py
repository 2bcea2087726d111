"""Outside clients: the MCP Inspector CLI (npm) accepts every tool and error without a schema
complaint, and `qmt-mcp demo` runs its transcript end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSPECTOR = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "mcp-inspector"


def _inspector(home: Path, *method: str) -> subprocess.CompletedProcess[str]:
    if not INSPECTOR.exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail(".ci/run installs the MCP Inspector CLI; it is missing")
        pytest.skip("MCP Inspector CLI not installed (bash .ci/run installs it into .ci/node)")
    cmd = [str(INSPECTOR), "--cli", "-e", f"QMT_MCP_HOME={home}", sys.executable, "-m", "qmt_mcp", "serve", *method]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


def test_inspector_lists_every_tool_with_its_schemas(tmp_path: Path) -> None:
    res = _inspector(tmp_path, "--method", "tools/list")
    assert res.returncode == 0, res.stderr
    tools = {t["name"]: t for t in json.loads(res.stdout)["tools"]}
    assert len(tools) == 19
    assert all("outputSchema" in t and "annotations" in t for t in tools.values())


# One call per tool, as an outside client would make it; each must pass the Inspector's own
# outputSchema validation (on success and on error alike).
EVERY_TOOL = [
    ("health", []), ("list_accounts", []), ("get_quote", ['codes=["600000.SH","000001"]']),
    ("get_klines", ["code=600519.SH", "period=1d", "count=3"]),
    ("get_ticks", ["code=600000.SH", "start=20261120093000", "end=20261120093010"]),
    ("search_instruments", ["query=60"]), ("get_instrument", ["code=688981"]), ("list_sectors", []),
    ("get_asset", ["account=sim"]), ("get_positions", ["account=sim"]), ("get_orders", ["account=sim"]),
    ("get_trades", ["account=sim"]), ("get_order", ["account=sim", "client_order_id=none-such"]),
    ("preview_order", ["account=sim", "code=600000.SH", "side=buy", "volume=100", "price=9.5"]),
    ("place_order", ["account=sim", "code=600000.SH", "side=buy", "volume=100", "price=8.9"]),
    ("cancel_order", ["account=sim", "order_id=1"]), ("get_risk_status", []),
    ("reset_risk", ["account=sim", "note=inspector check"]), ("get_order_events", ["account=sim"]),
]


@pytest.mark.parametrize(("tool", "args"), EVERY_TOOL, ids=[t for t, _ in EVERY_TOOL])
def test_inspector_accepts_every_tool_result(tmp_path: Path, tool: str, args: list[str]) -> None:
    extra = ["--tool-arg", *args] if args else []
    res = _inspector(tmp_path, "--method", "tools/call", "--tool-name", tool, *extra)
    out = res.stdout + res.stderr
    assert "does not match" not in out and res.returncode in (0, 5), out
    body = json.loads(res.stdout)
    assert body["structuredContent"]["ok"] is (not body.get("isError", False))


def test_inspector_accepts_a_successful_call(tmp_path: Path) -> None:
    res = _inspector(tmp_path, "--method", "tools/call", "--tool-name", "get_quote",
                     "--tool-arg", 'codes=["600000.SH"]')
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["structuredContent"]["quotes"][0]["code"] == "600000.SH"


@pytest.mark.parametrize(
    "args",
    [
        ["--tool-name", "get_instrument", "--tool-arg", "code=999999.SH"],
        ["--tool-name", "place_order", "--tool-arg", "account=sim", "code=600000.SH", "side=buy", "volume=150",
         "price=10"],
        ["--tool-name", "get_quote", "--tool-arg", "codes=[]"],
    ],
)
def test_inspector_accepts_error_results_without_a_schema_complaint(tmp_path: Path, args: list[str]) -> None:
    res = _inspector(tmp_path, "--method", "tools/call", *args)
    out = res.stdout + res.stderr
    assert "does not match" not in out, out
    # It validated and printed the isError result: 0.15 exits 0, the 2.x line exits 5 (tool_is_error).
    assert res.returncode in (0, 5), out
    body = json.loads(res.stdout)
    assert body["isError"] is True and body["structuredContent"]["ok"] is False


def test_inspector_reads_a_resource_and_a_prompt(tmp_path: Path) -> None:
    res = _inspector(tmp_path, "--method", "resources/read", "--uri", "qmt://accounts/sim/asset")
    assert res.returncode == 0, res.stderr
    assert json.loads(json.loads(res.stdout)["contents"][0]["text"])["cash"] == 1_000_000
    res = _inspector(tmp_path, "--method", "prompts/get", "--prompt-name", "review_portfolio",
                     "--prompt-args", "account=sim")
    assert res.returncode == 0, res.stderr
    assert "get_positions" in res.stdout


@pytest.fixture
def http_url(tmp_path: Path) -> Iterator[str]:
    """A streamable HTTP server for the Inspector. Inspector 0.15 (what node 20 installs) cannot send
    headers, so this loopback server runs without a token, as loopback allows."""
    from test_http_transport import _start

    proc, port = _start(tmp_path, "streamable-http", token=None)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _inspector_http(url: str, *method: str) -> subprocess.CompletedProcess[str]:
    if not INSPECTOR.exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail(".ci/run installs the MCP Inspector CLI; it is missing")
        pytest.skip("MCP Inspector CLI not installed (bash .ci/run installs it into .ci/node)")
    cmd = [str(INSPECTOR), "--cli", url, "--transport", "http", *method]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


def test_inspector_over_streamable_http_lists_calls_reads_and_gets_prompts(http_url: str) -> None:
    res = _inspector_http(http_url, "--method", "tools/list")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["tools"]) == 19
    res = _inspector_http(http_url, "--method", "tools/call", "--tool-name", "get_quote",
                          "--tool-arg", 'codes=["600519.SH"]')
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["structuredContent"]["quotes"][0]["code"] == "600519.SH"
    res = _inspector_http(http_url, "--method", "tools/call", "--tool-name", "place_order",
                          "--tool-arg", "account=sim", "code=600519.SH", "side=buy", "volume=50", "price=1000")
    out = res.stdout + res.stderr
    assert "does not match" not in out and res.returncode in (0, 5), out
    assert json.loads(res.stdout)["structuredContent"]["error"]["code"] == "LOT_SIZE"
    res = _inspector_http(http_url, "--method", "resources/read", "--uri", "qmt://health")
    assert res.returncode == 0, res.stderr
    assert json.loads(json.loads(res.stdout)["contents"][0]["text"])["worker"]["state"] == "up"
    res = _inspector_http(http_url, "--method", "prompts/get", "--prompt-name", "reconcile_unknown_order",
                          "--prompt-args", "account=sim", "client_order_id=abc-1")
    assert res.returncode == 0, res.stderr
    assert "abc-1" in res.stdout


def test_demo_runs_its_transcript(tmp_path: Path) -> None:
    env = {**os.environ, "QMT_MCP_HOME": str(tmp_path / "unused")}
    env.pop("QMT_MCP_CONFIG", None)
    res = subprocess.run([sys.executable, "-m", "qmt_mcp", "demo", "--home", str(tmp_path / "demo")], env=env,
                         capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "succeeded" in out and "idempotent_replay\": true" in out
    for code in ("INSUFFICIENT_POSITION", "LOT_SIZE", "PRICE_TICK", "PRICE_LIMIT"):
        assert code in out
    assert "done:" in out
