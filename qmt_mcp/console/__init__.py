"""`qmt-mcp console`: the operator console, a web page for the person beside the agent.

Its own process. It finds the worker the way the operator CLI does (operator_link.py: `[worker] url`
when the config sets it, else worker.json, trusted only if this user owns it and nobody else can write
it), reads with the worker token (worker.json's, or `$<worker.token_env>` for worker.url: the server's
credential for ordinary calls and the event stream) and acts with the operator key (operator.key, or
the person's copy named by worker.operator_key_file) for a person's calls, which pass
`channel: "console"`.

    app.py     routes, who may ask, the person's actions, the command
    pages.py   the page's parts (health, approvals with their preview, orders, accounts, risk, audit)
    chart.py   the kline chart with the account's fills, as inline SVG
    feed.py    the live event feed: the worker's journal relayed as Server-Sent Events
    fmt.py     escaping, and money, prices and shares as a person reads them

The security model, because the page can move money:
- Loopback by default; any other --host needs --allow-remote (then use an SSH tunnel or a TLS proxy).
- A one-time login token, printed at start, buys a random in-memory session cookie (HttpOnly,
  SameSite=Strict); every page, the feed included, needs it. A restart of the console ends every session.
- Every state-changing request is a POST with the session's CSRF token and a same-origin `Origin`;
  anything else is 403. A loopback console also checks `Host`, so a rebound DNS name cannot reach it.
- Broker and market text (names, remarks, notes) goes through html.escape wherever it is interpolated,
  and the feed's script writes events with textContent.
"""

from .app import Console, Session, add_command, cmd_console
from .fmt import esc

__all__ = ["Console", "Session", "add_command", "cmd_console", "esc"]
