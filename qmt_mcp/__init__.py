"""qmt-mcp: an MCP server that lets LLM agents trade China A-shares through miniQMT, safely."""

__version__ = "0.1.0"
__all__ = ["__version__"]
