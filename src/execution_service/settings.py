"""Settings from `EXEC_*` environment variables. Every field is documented in the README."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from execution_service.outbound.egress import Egress, parse_egress
from execution_service.outbound.policy import OutboundPolicy


class WeightWindow(BaseModel):
    limit: int = Field(gt=0)
    seconds: float = Field(gt=0)  # not money
    grace: float | None = Field(default=None, ge=0)  # not money


class Settings(BaseSettings):
    # A bad setting's error names the setting, never its value (keys, proxy passwords).
    model_config = SettingsConfigDict(
        env_prefix="EXEC_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite+aiosqlite:///./execution.db"
    # PostgreSQL connections per process: the main pool (kept + overflow) and the API's read
    # pool (kept; 4 overflow). Budget max_connections for every API and worker process.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    db_read_pool_size: int = Field(default=16, ge=1)
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    # "text" (human-readable) or "json" (one object per line); unset: json in production.
    log_format: Literal["text", "json"] | None = None
    # `worker` serves GET /metrics on this port when set (`serve` has it on the API port).
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # Credential encryption: "kid:base64key,kid2:base64key" (the first is used for new rows),
    # or a key file written by development on first start.
    encryption_keys: SecretStr | None = None
    encryption_key_file: str = ".execution-keys"

    bootstrap_admin_key: SecretStr | None = None
    migrate_on_start: bool = True
    workers_enabled: bool = True
    heartbeat_stale_seconds: float = Field(default=30, gt=0)
    # /health/ready fails when the position monitor (stops, targets, liquidations) or the order
    # tracker has not completed a tick for this long.
    monitor_stale_seconds: float = Field(default=15, gt=0)
    order_tracker_stale_seconds: float = Field(default=60, gt=0)

    # HTTP limits
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # A connection must complete its request headers this long after it opens (or after its
    # previous answer), and its body this long after the headers; beyond max connections the
    # server answers 503. Open event streams per API key are capped too (429 beyond).
    http_header_timeout_seconds: float = Field(default=10, gt=0)
    http_body_timeout_seconds: float = Field(default=30, gt=0)
    http_max_connections: int = Field(default=4096, ge=16)
    sse_streams_per_key: int = Field(default=5, ge=1)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed ("10.0.0.1,10.0.0.2" or
    # "*"); empty: none, and the client address is the connection's peer.
    forwarded_allow_ips: str = ""

    # Failed authentications within the window before more are refused (429) for the window,
    # counted per (client address, key prefix) so other keys from a shared address keep working,
    # and per key prefix across addresses (x10); signals per API key: a rate per minute + burst.
    auth_max_failures: int = Field(default=20, ge=1)
    auth_failure_window_seconds: float = Field(default=60, gt=0)
    signal_rate_per_minute: float = Field(default=600, gt=0)
    signal_rate_burst: int = Field(default=60, ge=1)

    # Signal execution
    signal_concurrency: int = Field(default=32, ge=1)
    # Calls in flight toward one account at once; more wait their turn.
    exchange_concurrency_per_connection: int = Field(default=4, ge=1)
    # Client order ids are "<prefix>-<signal>-<connection>-e" / "<prefix>-p<position>-x<n>": give
    # each deployment sharing an exchange account its own prefix.
    client_order_prefix: str = Field(default="es", pattern=r"^[A-Za-z0-9]{1,6}$")
    exchange_timeout_ms: int = Field(default=10_000, ge=100)
    # Reads (balance, tickers, order status, markets) retry temporary errors with exponential
    # backoff from this delay; order creation is never retried.
    exchange_read_retries: int = Field(default=3, ge=0, le=10)
    exchange_retry_base_delay: float = Field(default=0.2, ge=0)
    # Sizing reads an account's balances at most this old (our own fills booked in; a refused or
    # unknown order forgets them), and a venue's last price at most this old; 0 = every time.
    balance_cache_seconds: float = Field(default=5, ge=0)
    # ... and how old a kept balance may be when the venue's request budget has no room for a
    # fresh read at once (a large fan-out): sizing uses it rather than refusing the order.
    balance_kept_seconds: float = Field(default=300, ge=0)
    ticker_cache_seconds: float = Field(default=1, ge=0)
    # One request budget per (venue, egress) shared by every account (issue #19): in this
    # process's memory, or in Redis when set ("redis://127.0.0.1:6379/0"), shared by every API
    # replica and worker. `budget_enabled=false` goes back to ccxt's per-client spacing.
    redis_url: str | None = None
    budget_enabled: bool = True
    # Multiplies every venue's published limits, request weight and order counts alike (an
    # account tier with more of both; the test suite's one shared fake account).
    budget_limit_scale: float = Field(default=1.0, gt=0)
    # Replaces a venue's published weight window, per ccxt exchange id, as JSON:
    # '{"binance": {"limit": 6000, "seconds": 60, "grace": 1}}' (grace optional): a venue that
    # changed its limits, another tier, a test venue.
    budget_weight_windows: dict[str, WeightWindow] = Field(default_factory=dict)

    # Workers: each loop's interval, and how old a price may be before the monitor ignores it.
    monitor_interval_seconds: float = Field(default=1.0, gt=0)
    monitor_max_price_age_seconds: float = Field(default=60, gt=0)
    # After a refused exit order, the monitor waits this long before trying that position again.
    exit_retry_seconds: float = Field(default=10, ge=0)
    # Exits the venue refuses in a row before the position is flagged (`flagged_at`, the event
    # `position.flagged`) and the monitor stops sending them: an operator must look.
    exit_max_refusals: int = Field(default=5, ge=1)
    # A spot exit sells what the account holds when that falls short of the position by at most
    # this percent (fees taken in the base asset, rounding); the rest is recorded as dust.
    spot_exit_tolerance_percent: float = Field(default=1, ge=0, le=10)
    order_tracker_interval_seconds: float = Field(default=2.0, gt=0)
    # Where the venue pushes an account's order updates (a declared `Stream.orders`), orders
    # with an update are looked up at once (the tracker's passes stay the safety net).
    order_streams: bool = True
    # Order lookups on one connection that fail in a row (not "not found": the venue could not
    # be asked, or refused) before the connection is moved to `error` with the reason.
    tracker_max_lookup_failures: int = Field(default=10, ge=1)
    # Derivatives accounts: how often the venue's positions are reconciled with ours (closes
    # made without us, liquidation prices) and its funding booked; also once at start-up.
    venue_sync_interval_seconds: float = Field(default=30, gt=0)
    # A pending order younger than this is left alone (its send may still be in flight); an order
    # the exchange has not heard of this long after submission is rejected.
    pending_grace_seconds: float = Field(default=30, gt=0)
    health_interval_seconds: float = Field(default=60, gt=0)
    max_consecutive_failures: int = Field(default=5, ge=1)
    analytics_interval_seconds: float = Field(default=60, gt=0)
    # The drawdown guard: how often the equity of accounts with a stop-out rule is checked.
    guard_interval_seconds: float = Field(default=5, gt=0)

    # Webhooks: the delivery worker's tick, the per-request timeout, and retries with
    # exponential backoff (base, base*2, base*4, ... capped at an hour) up to max attempts.
    webhook_interval_seconds: float = Field(default=1.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_retry_base_seconds: float = Field(default=10, ge=0)
    # Where tenant-given URLs (api_base_url, webhooks) may connect: see outbound/policy.py and the
    # README's "Outbound connections". Loopback, private and reserved addresses only with
    # EXEC_OUTBOUND_ALLOW_PRIVATE (unset: only when EXEC_ENV=test; refused in production; the
    # old name EXEC_WEBHOOK_ALLOW_PRIVATE_NETWORKS is read too). Operator-listed hosts ("host" or
    # "host:port", comma-separated) are allowed wherever they resolve. With venue hosts only
    # (unset: on in production), a ccxt URL must name a host ccxt knows for its exchange.
    outbound_allow_private: bool | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "outbound_allow_private",
            "EXEC_OUTBOUND_ALLOW_PRIVATE",
            "EXEC_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
        ),
    )
    outbound_allowed_hosts: str = ""
    outbound_venue_hosts_only: bool | None = None
    # Egress groups (issue #19): name -> HTTP proxy URL, as JSON, e.g.
    # '{"eu-2": "http://10.0.0.7:3128"}'. A ccxt connection may name one; each (venue, egress)
    # has its own request budget. See outbound/egress.py.
    egress_proxies: dict[str, SecretStr] = Field(default_factory=dict)
    # How often GET /api/v1/events looks for new events in the outbox table.
    events_poll_seconds: float = Field(default=0.2, gt=0)
    # Events (and their finished webhook deliveries) older than this many days are deleted by the
    # analytics worker, a bounded batch per tick; 0 keeps them forever.
    events_retention_days: int = Field(default=30, ge=0)

    # Market data: fetching data connections (ccxt, mtapi) are polled this often for their
    # symbols and their positions' symbols; one not fetched for `stale` seconds is stale (shown in
    # its read model and in /health/ready). Ticks are kept `tick_retention_hours` (0: forever),
    # configured bar timeframes `bar_retention_days` unless the connection says otherwise (0:
    # forever); the retention loop deletes expired rows every `prune_interval_seconds`, at most
    # `prune_batch` rows a statement and `prune_max_batches` statements a pass.
    market_data_poll_seconds: float = Field(default=1.0, gt=0)
    # A `ccxt` data connection whose venue pushes tickers (a declared `Stream.tickers`) is
    # streamed by one worker process, and polled only while its stream is down or silent.
    market_data_streams: bool = True
    market_data_stale_seconds: float = Field(default=60, gt=0)
    market_data_tick_retention_hours: float = Field(default=24, ge=0)
    market_data_bar_retention_days: float = Field(default=365, ge=0)
    market_data_prune_interval_seconds: float = Field(default=60, gt=0)
    market_data_prune_batch: int = Field(default=5000, ge=1)
    market_data_prune_max_batches: int = Field(default=200, ge=1)

    # Paper accounts: the default starting balance when a connection does not give one.
    paper_default_balance: str = "10000"
    paper_default_currency: str = "USDT"

    @property
    def effective_log_format(self) -> str:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.env == "production" else "text"

    @model_validator(mode="after")
    def _grace_outlasts_a_send(self) -> Settings:
        # An order may wait one exchange timeout for a slot and take another to be answered: the
        # tracker must not call it "never seen" before both have passed.
        if self.pending_grace_seconds < 2 * self.exchange_timeout_ms / 1000:
            raise ValueError(
                "EXEC_PENDING_GRACE_SECONDS must be at least 2 x EXEC_EXCHANGE_TIMEOUT_MS"
            )
        return self

    @model_validator(mode="after")
    def _no_private_outbound_in_production(self) -> Settings:
        if self.env == "production" and self.outbound_allow_private:  # None: not asked for
            raise ValueError(
                "EXEC_OUTBOUND_ALLOW_PRIVATE is for tests and development: in production, list "
                "trusted private hosts in EXEC_OUTBOUND_ALLOWED_HOSTS instead"
            )
        return self

    @model_validator(mode="after")
    def _egress_groups_are_sound(self) -> Settings:
        self.egress  # noqa: B018 (parsed now: a bad group stops the start, not the first order)
        return self

    @property
    def egress(self) -> dict[str, Egress]:
        return parse_egress({k: v.get_secret_value() for k, v in self.egress_proxies.items()})

    @property
    def outbound(self) -> OutboundPolicy:
        hosts = (h.strip().lower() for h in self.outbound_allowed_hosts.split(","))
        venue_only = self.outbound_venue_hosts_only
        allow = self.outbound_allow_private
        return OutboundPolicy(
            allow_private=self.env == "test" if allow is None else allow,
            allowed_hosts=frozenset(h for h in hosts if h),
            venue_hosts_only=self.env == "production" if venue_only is None else venue_only,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
