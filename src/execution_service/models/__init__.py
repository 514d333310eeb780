"""Every table. Importing this package imports each module of it, so Alembic sees every table
with one import; the rest of the code imports tables from here. Money columns are `Money`, closed
vocabularies `Vocabulary` (read back as their enum).

- `accounts`: API keys, presets, data connections and market data, execution connections and
  their kept balances;
- `paper`: the paper venue's own book;
- `trading`: signals, execution logs, positions, daily analytics;
- `outbox`: heartbeats, events, webhooks and deliveries.
"""

from execution_service.models.accounts import (
    ApiKey,
    DataConnection,
    ExecutionConnection,
    KeptBalance,
    MarketData,
    MarketDataLatest,
    TradingPreset,
)
from execution_service.models.base import Base, Owned, Timestamps
from execution_service.models.outbox import (
    Event,
    MonitorShare,
    MonitorWorker,
    Webhook,
    WebhookDelivery,
    WorkerHeartbeat,
)
from execution_service.models.paper import PaperBalance, PaperHolding, PaperOrder
from execution_service.models.trading import (
    ExecutionAnalytics,
    ExecutionLog,
    ExecutionPosition,
    Signal,
)

__all__ = [
    "ApiKey",
    "Base",
    "DataConnection",
    "Event",
    "ExecutionAnalytics",
    "ExecutionConnection",
    "ExecutionLog",
    "ExecutionPosition",
    "KeptBalance",
    "MarketData",
    "MarketDataLatest",
    "MonitorShare",
    "MonitorWorker",
    "Owned",
    "PaperBalance",
    "PaperHolding",
    "PaperOrder",
    "Signal",
    "Timestamps",
    "TradingPreset",
    "Webhook",
    "WebhookDelivery",
    "WorkerHeartbeat",
]
