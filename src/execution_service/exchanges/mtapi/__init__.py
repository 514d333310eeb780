"""`ExchangeAdapter` for MetaTrader 4/5 accounts behind an mtapi.io-style REST gateway.

adapter.py is the adapter; gateway.py the HTTP session (httpx stays inside it); tickets.py finds
the ticket an order opened; writes.py sends what must never be sent twice; parsing.py reads the
gateway's answers.

MetaTrader's model, and how it maps onto the service's:
- `amount` is in lots. A market order opens a *ticket* (a position) and is `filled` at once; a
  limit order is a pending ticket (`open`) until the broker fills it.
- There is no client order id. Ours goes in the ticket's `comment` (31 characters at most) and a
  `magic` number derived from it: brokers rewrite comments (an SL close appends "[sl]", an MT4
  partial close turns it into "to #<ticket>") but keep the magic, so reconciliation after a lost
  reply finds the ticket by magic in OpenedOrders/OrderHistory.
- Closing is not an opposite order (on a hedging account a Sell opens a second ticket): it is
  `close_position()`, by ticket. An MT4 partial close moves the rest to a new ticket commented
  "from #<old>"; `close_position`/`modify_order`/`fetch_position` follow that chain, so callers
  keep using the entry ticket.
- The broker holds SL/TP server-side: they go with the order and `modify_order` keeps them in
  sync. The broker may then close a ticket on its own (`fetch_position` answers None).
"""
