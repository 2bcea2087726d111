"""One stdio session with an installed `qmt-mcp`, through the MCP SDK's own client.

Run by `.ci/run` with the Python of the venv the wheel went into, from a folder outside the checkout:

    python .ci/wheel_session.py /path/to/venv/bin/qmt-mcp /path/to/scratch-home

It checks that `qmt_mcp` is imported from that venv (not from the checkout), lists the tools, and
calls `health` and `get_quote`; any failure raises, so the script exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

import qmt_mcp


def _ok(result: Any, tool: str) -> dict[str, Any]:
    body = result.structured_content
    if result.is_error or not isinstance(body, dict) or body.get("ok") is not True:
        raise SystemExit(f"{tool} did not succeed: {body or result.content}")
    return body


async def session(command: str, home: str) -> None:
    params = StdioServerParameters(command=command, args=["serve"], env={"QMT_MCP_HOME": home})
    with anyio.fail_after(120):
        async with Client(params) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            if not {"health", "get_quote", "place_order"} <= tools:
                raise SystemExit(f"tools missing from tools/list: {sorted(tools)}")
            health = _ok(await client.call_tool("health", {}), "health")
            quote = _ok(await client.call_tool("get_quote", {"codes": ["600000.SH"]}), "get_quote")
            if quote["quotes"][0]["code"] != "600000.SH":
                raise SystemExit(f"get_quote answered for the wrong code: {quote}")
    print(f"stdio session: {len(tools)} tools; health ok (worker {health['worker']['state']}); "
          f"get_quote 600000.SH last {quote['quotes'][0]['last']}")


def main() -> None:
    command, home = sys.argv[1], sys.argv[2]
    venv = Path(command).resolve().parent.parent
    if not Path(qmt_mcp.__file__).resolve().is_relative_to(venv):
        raise SystemExit(f"qmt_mcp was imported from {qmt_mcp.__file__}, not from the venv at {venv}")
    anyio.run(session, command, home)


if __name__ == "__main__":
    main()
