"""The SDK's floor: a trivial MCPServer tool over stdio, measured beside qmt-mcp in the same run."""

from __future__ import annotations

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
    server.run("stdio")
