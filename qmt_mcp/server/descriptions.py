"""Tool titles and descriptions: units, and what to do next. Agents read these."""

from __future__ import annotations

TOOLS: dict[str, tuple[str, str]] = {
    "health": ("Health", "Worker, market-data and per-account trader state (restarts, risk breaker, baseline). "
               "Call first in a session, and whenever a call returns WORKER_UNAVAILABLE or TIMEOUT."),
    "list_accounts": ("List accounts", "Configured accounts by name, with masked ids and whether they are live. "
                      "Use the name as `account` in the other tools."),
    "get_quote": ("Get quotes", "Latest quotes with the 5-level book for 1-50 codes (600000.SH, sh600000 or "
                  "600000). Prices in yuan per share, volume in shares, amount in yuan."),
    "get_klines": ("Get klines", "OHLC bars for one code. period: 1m 5m 15m 30m 60m 1d 1w; times +08:00 (bar "
                   "start); volume in shares, amount in yuan. start/end accept YYYYMMDD, YYYYMMDDHHMMSS or ISO; "
                   "count (default 100, max 5000) keeps the latest bars."),
    "get_ticks": ("Get ticks", "Historical 3-second snapshots of one code between start and end (yuan, shares), "
                  "at most `limit` (default 100)."),
    "search_instruments": ("Search instruments", "Find codes by code prefix or part of the name, optionally "
                           "within a sector from list_sectors."),
    "get_instrument": ("Get instrument", "Trading rules of one code today: lot sizes (shares), price tick "
                       "(yuan), daily limits (yuan), ST, suspension, T+1. Check before sizing an order."),
    "list_sectors": ("List sectors", "Sector names usable in search_instruments."),
    "get_asset": ("Get asset", "Cash available, frozen cash, market value and total asset of an account, yuan."),
    "get_positions": ("Get positions", "Holdings: volume and can_use_volume (sellable now; today's buys sell "
                      "from the next day) in shares; prices and money in yuan. avg_price is the average fill "
                      "price, fees excluded; cost_price the average cost with the buy fees (成本价); "
                      "unrealized_pnl = market_value - cost_basis (buy fees counted, a future sell's not)."),
    "get_orders": ("Get orders", "Today's orders of an account with status; cancelable_only for open ones."),
    "get_trades": ("Get trades", "Today's fills: price (yuan), volume (shares), amount (yuan, fees excluded) and "
                   "fees (yuan) itemized as in preview_order: commission, stamp_duty, transfer_fee, and fees "
                   "(their sum)."),
    "get_order": ("Get order", "One order by order_id or client_order_id, with its events. wait_seconds "
                  "(0-60) waits for a final status. Use it to resolve SUBMIT_INDETERMINATE."),
    "preview_order": ("Preview order", "Dry run of an order: every rule-book check and risk rule, the cost "
                      "with fees (yuan: commission, stamp duty, transfer fee) and, for live accounts, the "
                      "confirm_token place_order needs. Places "
                      "nothing. Show the result to the person before placing."),
    "place_order": ("Place order", "Send an order. volume in shares, price in yuan per share (limit orders; "
                    "for SH/BJ best5 market orders the protective price, the worst they may trade at; other "
                    "market orders take none and may trade up to the daily limit). Live accounts need "
                    "confirm_token from preview_order. Give a client_order_id (not starting with ext-) so a "
                    "retry can never double the order; on SUBMIT_INDETERMINATE call get_order, never place "
                    "again."),
    "cancel_order": ("Cancel order", "Ask the broker to cancel an open order; returns its status after the "
                     "request. Canceling an already canceled order changes nothing. On a live account, an "
                     "order a person placed by hand (client_order_id ext-…) is theirs: the first call returns "
                     "CONFIRM_REQUIRED with a confirm_token; ask the person, and only if they agree call again "
                     "with it."),
    "get_risk_status": ("Get risk status", "Per account: baseline and current total asset (yuan), today's "
                        "P&L, the loss breaker, kill switch, limits and today's usage."),
    "reset_risk": ("Reset risk", "Lift a tripped daily-loss breaker, with a note (1-200 chars) that is "
                   "recorded. Live accounts: the first call returns CONFIRM_REQUIRED with a token to send back."),
    "get_order_events": ("Get order events", "Events of an account after after_seq, in seq order: order "
                         "status, fills, errors, risk. Pass next_seq back to continue; wait_seconds "
                         "(0-60) long-polls for the next event."),
}
