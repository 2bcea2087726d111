"""Outside clients: the MCP Inspector CLI (npm; the 0.15 line on node 20 and the newest on node 22)
accepts every tool and error without a schema complaint, the official MCP conformance suite passes
every scenario that applies to this server, and `qmt-mcp demo` runs its transcript end to end.

`bash .ci/run` installs the npm tools under .ci/node; without them these tests skip locally and
fail under CI (CI set)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSPECTOR = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "mcp-inspector"
NODE22_BIN = ROOT / ".ci" / "node" / "node22" / "node_modules" / ".bin"
NODE22 = NODE22_BIN / "node"
INSPECTOR2 = NODE22_BIN / "mcp-inspector"
CONFORMANCE = NODE22_BIN.parent / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"


def _need(what: str, present: bool) -> None:
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f".ci/run installs {what}; it is missing")
    pytest.skip(f"{what} not installed (bash .ci/run installs it under .ci/node)")


def _inspector(home: Path, *method: str) -> subprocess.CompletedProcess[str]:
    _need("the MCP Inspector CLI 0.15 (on node 20)", INSPECTOR.exists() and shutil.which("node") is not None)
    cmd = [str(INSPECTOR), "--cli", "-e", f"QMT_MCP_HOME={home}", sys.executable, "-m", "qmt_mcp", "serve", *method]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


def test_inspector_lists_every_tool_with_its_schemas(tmp_path: Path) -> None:
    res = _inspector(tmp_path, "--method", "tools/list")
    assert res.returncode == 0, res.stderr
    tools = {t["name"]: t for t in json.loads(res.stdout)["tools"]}
    assert len(tools) == 25   # 19 of 0.1; decide_approval (MCP Apps), two statement and three condition tools
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
    ("decide_approval", ["approval_id=ap-none", "decision=approve"]),   # refused: the Inspector has no MCP Apps
    ("get_statement", ["account=sim"]), ("get_pnl", ["account=sim", "start=20261101"]),
    ("place_conditional_order", ["account=sim", "code=600000.SH", "side=buy", "volume=100",
                                 'trigger={"type":"price_at_or_below","price":9.5}']),
    ("list_conditional_orders", ["account=sim"]), ("cancel_conditional_order", ["account=sim", "condition_id=cd-none"]),
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
    _need("the MCP Inspector CLI 0.15 (on node 20)", INSPECTOR.exists() and shutil.which("node") is not None)
    cmd = [str(INSPECTOR), "--cli", url, "--transport", "http", *method]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


def test_inspector_over_streamable_http_lists_calls_reads_and_gets_prompts(http_url: str) -> None:
    res = _inspector_http(http_url, "--method", "tools/list")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["tools"]) == 25
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


# --- The newest Inspector CLI (2.x, node 22) ---------------------------------------------------------


def _inspector2(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    _need("node 22 and the newest MCP Inspector CLI", NODE22.exists() and INSPECTOR2.exists())
    # Node 22 first on PATH for anything the CLI starts; its catalog file goes to tmp, not ~/.mcp-inspector.
    env = {**os.environ, "PATH": f"{NODE22_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MCP_CATALOG_PATH": str(tmp / "inspector-catalog.json")}
    cmd = [str(NODE22), str(INSPECTOR2), "--cli", "-e", f"QMT_MCP_HOME={tmp / 'home'}",
           sys.executable, "-m", "qmt_mcp", "serve", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=tmp, env=env)


def _call2(tmp: Path, tool: str, *args: str) -> dict[str, Any]:
    extra = ["--tool-arg", *args] if args else []
    res = _inspector2(tmp, "--method", "tools/call", "--tool-name", tool, *extra)
    assert res.returncode == 0, res.stdout + res.stderr
    body: dict[str, Any] = json.loads(res.stdout)["structuredContent"]
    assert body["ok"] is True, body
    return body


def test_newest_inspector_calls_health_and_get_quote(tmp_path: Path) -> None:
    health = _call2(tmp_path, "health")
    assert health["worker"]["state"] == "up"
    quote = _call2(tmp_path, "get_quote", 'codes=["600000.SH"]')
    assert quote["quotes"][0]["code"] == "600000.SH"


def test_newest_inspector_sends_a_numeric_code_and_gets_the_instrument(tmp_path: Path) -> None:
    # The 2.x CLI parses `code=600000` as a JSON number; the server takes six digits either way.
    instrument = _call2(tmp_path, "get_instrument", "code=600000")
    assert instrument["code"] == "600000.SH"
    quote = _call2(tmp_path, "get_quote", "codes=[600000]")
    assert quote["quotes"][0]["code"] == "600000.SH"


@dataclass(frozen=True)
class StrictList:
    """`tools/list --strict`: the tools, and the schema portability findings printed on stderr, one
    `Error: tool "name"` or `Warning: tool "name"` line each (nothing is printed when there are none)."""

    returncode: int
    tools: dict[str, dict[str, Any]]
    errors: list[str]
    warnings: list[str]


@pytest.fixture(scope="module")
def strict_list(tmp_path_factory: pytest.TempPathFactory) -> StrictList:
    res = _inspector2(tmp_path_factory.mktemp("strict"), "--method", "tools/list", "--strict")
    lines = res.stderr.splitlines()
    return StrictList(res.returncode, {t["name"]: t for t in json.loads(res.stdout)["tools"]},
                      [ln for ln in lines if ln.startswith("Error: tool ")],
                      [ln for ln in lines if ln.startswith("Warning: tool ")])


def test_newest_inspector_lists_every_tool(strict_list: StrictList) -> None:
    assert set(strict_list.tools) == {name for name, _ in EVERY_TOOL}
    assert all("outputSchema" in t for t in strict_list.tools.values())


def test_newest_inspector_finds_no_schema_portability_errors(strict_list: StrictList) -> None:
    assert (strict_list.returncode, strict_list.errors) == (0, [])  # an error-severity finding exits 6


def test_newest_inspector_reports_no_portability_warnings(strict_list: StrictList) -> None:
    # E.g. a nullable field spelled `"type": ["string", "null"]`, which single-type dialects reject.
    assert strict_list.warnings == []


# --- The official conformance suite (node 22), against a tokenless loopback server --------------------

# The suite's server scenarios that test this server's own surface; the suite cannot send an
# Authorization header, so the server runs on loopback without a token (http_url).
APPLIES = {
    "server-initialize": "the initialize handshake",
    "ping": "ping answers",
    "tools-list": "every tool has a name, a description and an input schema",
    "resources-list": "every resource has a uri and a name",
    "prompts-list": "every prompt has a name and a description",
    "resources-subscribe": "resources/subscribe answers {} (the suite's URI: any URI may be watched)",
    "resources-unsubscribe": "resources/unsubscribe answers {}",
    "server-sse-multiple-streams": "three concurrent POSTs on one session each get their answer",
    "dns-rebinding-protection": "a foreign Host header is refused, a localhost one accepted",
}
# The rest need what the suite's own reference server has and this one does not.
DOES_NOT_APPLY = {
    "logging-set-level": "no logging capability is declared (logs go to stderr)",
    "completion-complete": "no completions capability is declared",
    **dict.fromkeys(
        ["tools-call-simple-text", "tools-call-error", "tools-call-image", "tools-call-audio",
         "tools-call-embedded-resource", "tools-call-mixed-content", "tools-call-with-logging",
         "tools-call-with-progress", "tools-call-sampling", "tools-call-elicitation",
         "elicitation-sep1034-defaults", "elicitation-sep1330-enums"],
        "calls the suite's own test_* tools (the first two pass only because an unknown tool is an isError "
        "text result)"),
    **dict.fromkeys(["resources-read-text", "resources-read-binary", "resources-templates-read"],
                    "reads the suite's own test:// resources"),
    **dict.fromkeys(["prompts-get-simple", "prompts-get-with-args", "prompts-get-embedded-resource",
                     "prompts-get-with-image"], "gets the suite's own test_* prompts"),
}


def test_conformance_suite_passes_every_scenario_that_applies(http_url: str, tmp_path: Path) -> None:
    _need("node 22 and the MCP conformance suite", NODE22.exists() and CONFORMANCE.exists())
    out = tmp_path / "results"
    # The suite exits 1 because scenarios that do not apply fail; the verdict is read per scenario.
    res = subprocess.run([str(NODE22), str(CONFORMANCE), "server", "--url", http_url, "--output-dir", str(out)],
                         capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    checks: dict[str, list[dict[str, str]]] = {}
    for folder in out.iterdir():
        name = re.fullmatch(r"server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z", folder.name)
        assert name, folder.name
        checks[name[1]] = json.loads((folder / "checks.json").read_text())
    # A scenario added or renamed by a new suite version must be sorted into one of the two lists.
    assert set(checks) == set(APPLIES) | set(DOES_NOT_APPLY), res.stdout[-3000:]
    verdicts = {name: tuple(sorted({c["status"] for c in checks[name]})) for name in APPLIES}
    assert verdicts == dict.fromkeys(APPLIES, ("SUCCESS",)), res.stdout[-3000:]


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
