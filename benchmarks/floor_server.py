"""The SDK's floor: a trivial MCPServer tool, measured beside qmt-mcp in the same run.

    python benchmarks/floor_server.py            # stdio
    python benchmarks/floor_server.py --http N   # streamable HTTP on 127.0.0.1:N at /mcp
"""

from __future__ import annotations

import argparse

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

server = MCPServer("floor", log_level="WARNING")


class Echo(BaseModel):
    ok: bool
    value: str


@server.tool()
def echo(value: str) -> Echo:
    """Return the value."""
    return Echo(ok=True, value=value)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", type=int, metavar="PORT")
    port = ap.parse_args().http
    if port is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=port, streamable_http_path="/mcp")
