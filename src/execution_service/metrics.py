"""Every Prometheus series the service exports, in one place.

The default registry is process-wide: `serve` exposes it on `GET /metrics`, and `worker` on its own
port when `EXEC_WORKER_METRICS_PORT` is set. Labels are closed vocabularies only (statuses,
adapters, error codes, route templates), never row ids, so the number of series stays bounded.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

# Order latency is dominated by the exchange round trip: 5 ms (paper) to 30 s (a slow venue).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

ORDERS = Counter(
    "execution_orders",
    "Orders reaching a status (counted once per order and status), by adapter.",
    ["status", "adapter"],
)
ORDER_LATENCY = Histogram(
    "execution_order_latency_seconds",
    "From receiving the signal (or deciding the exit) to the exchange's acknowledgement.",
    ["purpose"],
    buckets=_LATENCY_BUCKETS,
)
EXCHANGE_ERRORS = Counter(
    "execution_exchange_errors",
    "Errors raised by exchange adapters, by error code and adapter operation.",
    ["kind", "operation"],
)
ORDER_LOOKUP_FAILURES = Counter(
    "execution_order_lookup_failures",
    "Order lookups by the order tracker that failed (the venue could not be asked, or refused), "
    "by error code.",
    ["kind"],
)
VENUE_CLOSES = Counter(
    "execution_venue_closes",
    "Positions the venue closed without an order of ours (liquidation, external), by reason.",
    ["reason"],
)
OPEN_POSITIONS = Gauge(
    "execution_open_positions", "Open positions seen by the last position monitor tick."
)
MONITOR_TICK = Histogram(
    "execution_monitor_tick_seconds",
    "Duration of one position monitor tick.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MONITOR_SHARES = Gauge(
    "execution_monitor_shares",
    "Shares of the position monitor's work (of 64) this process holds (all of them on SQLite).",
)
MONITOR_WORKERS = Gauge(
    "execution_monitor_workers",
    "Worker processes splitting the position monitor's shares, as this process last saw them.",
)
CONNECTIONS = Gauge(
    "execution_connections",
    "Execution connections by status, as of the last connection health tick.",
    ["status"],
)
CONNECTION_CHECKS = Counter(
    "execution_connection_checks", "Connection health checks, by outcome.", ["outcome"]
)
MARKET_DATA_POINTS = Counter(
    "execution_market_data_points",
    "Market data points written: pushed over the API, fetched by a feed, streamed by a venue, "
    "or built into bars.",
    ["source"],
)
MARKET_DATA_PRUNED = Counter(
    "execution_market_data_pruned", "Expired market data rows deleted by the retention loop."
)
ORDER_STREAMS = Gauge(
    "execution_order_streams",
    "Accounts whose venue pushes their order updates, by state: streaming (connected and "
    "waiting for updates) or retrying (disconnected: the order tracker polls meanwhile).",
    ["state"],
)
MARKET_DATA_FEEDS = Gauge(
    "execution_market_data_feeds",
    "Active fetching data connections by how they get their prices: streaming (pushed by the "
    "venue's websocket) or polling (fetched over REST: no stream, or it is down or silent), as "
    "of the last feed tick or readiness check.",
    ["mode"],
)
MARKET_DATA_STALE_FEEDS = Gauge(
    "execution_market_data_stale_feeds",
    "Active fetching data connections that have fetched nothing for "
    "EXEC_MARKET_DATA_STALE_SECONDS, as of the last feed tick or readiness check.",
)
STALE_PRICE_VENUES = Gauge(
    "execution_price_venues_stale",
    "Venues whose public prices mark positions (accounts without a data connection) and that "
    "have not answered for EXEC_MONITOR_MAX_PRICE_AGE_SECONDS, as of the last monitor tick.",
)
HTTP_REQUESTS = Counter(
    "execution_http_requests",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "execution_http_request_duration_seconds",
    "HTTP request duration by method and route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)


def render() -> tuple[bytes, str]:
    """The exposition text of the default registry, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


# The request budget per (venue, egress) (issue #19): egress is a proxy's host, never its URL.
BUDGET_USED = Gauge(
    "execution_budget_used", "Request weight counted in the current window.", ["venue", "egress"]
)
BUDGET_LIMIT = Gauge(
    "execution_budget_limit", "Request weight allowed per window.", ["venue", "egress"]
)
BUDGET_PAUSED_UNTIL = Gauge(
    "execution_budget_paused_until",
    "Unix time until which the venue told us to stop (0: not paused).",
    ["venue", "egress"],
)
BUDGET_PAUSES = Counter(
    "execution_budget_pauses",
    "429/418 answers that paused a budget.",
    ["venue", "egress", "status"],
)
BUDGET_WAIT = Histogram(
    "execution_budget_wait_seconds",
    "How long a request waited for its budget (0 when there was room).",
    ["priority"],
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 15, 60),
)
