"""followers and kill switches: a preset carries a follower's rules (multiplier, symbol filters
and map, reverse, leverage and risk caps, small trades, drawdown stop-out); a connection can be
close-only and keeps its stop-out record

Revision ID: b7d3e9a1c2f4
Revises: a1c4e7f2b9d0
Create Date: 2026-12-04 16:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import Money, UtcDateTime

revision: str = "b7d3e9a1c2f4"
down_revision: str | None = "a1c4e7f2b9d0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRESET_MONEY = (
    "multiplier",
    "max_leverage",
    "max_risk_percent",
    "min_trade_notional",
    "stop_out_drawdown_percent",
    "stop_out_daily_loss",
)


def upgrade() -> None:
    # Plain ADD COLUMNs, not a batch: on SQLite a batch copies the table and drops the old one,
    # which its foreign keys refuse once other rows point at it.
    for column in PRESET_MONEY:
        op.add_column("trading_presets", sa.Column(column, Money(), nullable=True))
    for column in ("symbols_allowed", "symbols_denied", "symbol_map"):
        op.add_column("trading_presets", sa.Column(column, sa.JSON(), nullable=True))
    op.add_column(
        "trading_presets",
        sa.Column("reverse", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("trading_presets", sa.Column("small_trades", sa.String(20), nullable=True))
    op.add_column("trading_presets", sa.Column("stop_out_action", sa.String(20), nullable=True))
    op.add_column(
        "execution_connections",
        sa.Column("close_only", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("execution_connections", sa.Column("peak_equity", Money(), nullable=True))
    op.add_column("execution_connections", sa.Column("day_equity", Money(), nullable=True))
    op.add_column("execution_connections", sa.Column("day_equity_on", sa.Date(), nullable=True))
    op.add_column(
        "execution_connections", sa.Column("stopped_out_at", UtcDateTime(), nullable=True)
    )
    op.add_column(
        "execution_connections", sa.Column("stop_out_reason", sa.String(200), nullable=True)
    )


def _drop(table: str, columns: Sequence[str]) -> None:
    """SQLite drops a plain column in place (a batch would copy and drop the table, which its
    foreign keys refuse); elsewhere a batch."""
    if op.get_bind().dialect.name == "sqlite":
        for column in columns:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        return
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.drop_column(column)


def downgrade() -> None:
    _drop(
        "execution_connections",
        (
            "stop_out_reason",
            "stopped_out_at",
            "day_equity_on",
            "day_equity",
            "peak_equity",
            "close_only",
        ),
    )
    _drop(
        "trading_presets",
        (
            "stop_out_action",
            "small_trades",
            "reverse",
            "symbol_map",
            "symbols_denied",
            "symbols_allowed",
            *PRESET_MONEY,
        ),
    )
