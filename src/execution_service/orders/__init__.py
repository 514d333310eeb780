"""Every order's life, from the pending row to the fill applied to the position book.

- `entries`: a signal's orders on its connections (pending rows, sending, the simulated batch);
- `exits`: the orders that reduce or close positions, one claim for the API and the monitor;
- `lifecycle`: sending one order and recording what the venue said (`apply_result`, `reject`);
- `outcomes`: recording many outcomes in one transaction, and `send` for one order;
- `fills`: a fill saved to the book (`positions.book` says what changes);
- `tracker`: resting and lost orders, reconciled by client order id;
- `ids`: the deterministic client order ids;
- `service`, `router`, `repository`, `schemas`: the API (`/logs`, position close and amend).
"""
