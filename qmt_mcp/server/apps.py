"""MCP Apps views (the `io.modelcontextprotocol/ui` extension, through the SDK's `mcp.server.apps`).

Three tools carry a view the host renders in the chat next to their result: preview_order the order
ticket, get_positions the portfolio, get_klines the chart. Each view is one self-contained HTML
document in `views/` (inline JS and CSS, no network: the host's CSP forbids it) that draws what its
tool returned and calls tools through the host for the rest (the ticket follows the order it
previewed and decides its approval with the app-only decide_approval; the portfolio reads the asset;
the chart reads the account's fills).

The tools' results are the same for every client: a client without the extension gets today's text
and structured content, and only tools/list shows the `_meta.ui` it ignores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from mcp.server.apps import Apps, Visibility

# tool name -> the view it carries, and who may call it (None: the model and the view, the default)
VIEWS: dict[str, tuple[str, list[Visibility] | None]] = {
    "preview_order": ("ui://qmt/order-ticket.html", None),
    "get_positions": ("ui://qmt/portfolio.html", None),
    "get_klines": ("ui://qmt/chart.html", None),
    # The ticket's Approve / Deny: hidden from the model by the host (tools/approvals.py).
    "decide_approval": ("ui://qmt/order-ticket.html", ["app"]),
}
TITLES = {
    "ui://qmt/order-ticket.html": ("Order ticket", "The order, its checks, fees and risk; Approve / Deny where a "
                                                   "person must decide"),
    "ui://qmt/portfolio.html": ("Portfolio", "Holdings with cost, last, P&L and sellable volume; cash, total and "
                                             "allocation"),
    "ui://qmt/chart.html": ("Chart", "Candles and volume, with the account's own fills marked"),
}


def view_html(uri: str) -> str:
    """The HTML document of the view `uri`: views/<name>.html with the shared parts inlined where it
    marks them (base.css, the host bridge bridge.js), so what the host gets is one document."""
    views = resources.files(__package__) / "views"
    html = (views / uri.removeprefix("ui://qmt/")).read_text(encoding="utf-8")
    for marker, part in (("/*qmt:base*/", "base.css"), ("/*qmt:bridge*/", "bridge.js")):
        html = html.replace(marker, (views / part).read_text(encoding="utf-8").strip())
    return html


def build_apps(tools: Mapping[str, tuple[Callable[..., Any], dict[str, Any]]]) -> Apps:
    """The extension with every view and its tools: `tools` maps each name in VIEWS to its function and
    the keyword arguments it is registered with (name, title, description, annotations)."""
    apps = Apps()
    for uri, (title, description) in TITLES.items():
        apps.add_html_resource(uri, view_html(uri), name=uri.removeprefix("ui://qmt/").removesuffix(".html"),
                               title=title, description=description)
    for name, (uri, visibility) in VIEWS.items():
        fn, kwargs = tools[name]
        apps.tool(resource_uri=uri, visibility=visibility, **kwargs)(fn)
    return apps
