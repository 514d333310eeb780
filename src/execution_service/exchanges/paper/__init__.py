"""The paper exchange: a simulated margin account inside the service, persisted in its own tables.

- Market orders fill at the linked data connection's latest price, moved against the taker by
  `slippage_bps`; the fee is `fee_rate` * notional in the quote currency.
- Limit orders fill at once when marketable (at the latest price), otherwise rest `open` and fill at
  their limit when a later `fetch_order` sees the price cross it (the order tracker polls that).
- The account nets per symbol (one-way mode): a fill that opens or adds reserves
  notional/leverage of margin (leverage from the connection's preset, else 1); a fill that reduces
  releases margin pro rata and books the realised PnL. No price: `NoPrice`; too little free
  quote: `InsufficientFunds`.
- Markets exist for any `BASE/QUOTE` symbol with amount step, tick and minimum amount 0.00000001 and
  no minimum notional.

adapter.py is the venue, one account at a time; batch.py fills a fan-out's orders in one
transaction, on plain values, with the arithmetic of booking.py (where a fill is priced and what
it books, shared by both paths) and the set-based statements of ledger.py; quotes.py reads a
fan-out's balances and prices in a few queries; orders.py checks a new order and reports one;
repository.py holds the venue's other queries.
"""
