"""data connection feeds: mtapi credentials, symbols and bar timeframes, health fields and a
poll claim on data connections; the latest point per (data connection, symbol) in a table of
its own; an index for the retention loop's deletes

Revision ID: c3d9e8a2f1b7
Revises: b7e2c4d1f9a3
Create Date: 2026-12-04 17:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import Money, UtcDateTime

revision: str = "c3d9e8a2f1b7"
down_revision: str | None = "b7e2c4d1f9a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("data_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credentials_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("credentials_key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("api_key_hint", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("symbols", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("timeframes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_tested_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_fetched_at", UtcDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("next_fetch_at", UtcDateTime(), nullable=True))
    op.create_table(
        "market_data_latest",
        sa.Column("data_connection_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("close", Money(), nullable=False),
        sa.Column("timestamp", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_connection_id"],
            ["data_connections.id"],
            name=op.f("fk_market_data_latest_data_connection_id_data_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("data_connection_id", "symbol", name=op.f("pk_market_data_latest")),
    )
    with op.batch_alter_table("market_data", schema=None) as batch_op:
        batch_op.create_index("ix_market_data_expiry", ["timeframe", "timestamp"], unique=False)
    # What was stored so far: each (data connection, symbol)'s newest point (the one the latest
    # lookup chose before: the greatest timestamp, then the greatest id).
    op.execute(
        """
        INSERT INTO market_data_latest (data_connection_id, symbol, close, timestamp, updated_at)
        SELECT m.data_connection_id, m.symbol, m.close, m.timestamp, m.created_at
        FROM market_data m
        WHERE m.id = (
            SELECT n.id FROM market_data n
            WHERE n.data_connection_id = m.data_connection_id AND n.symbol = m.symbol
            ORDER BY n.timestamp DESC, n.id DESC
            LIMIT 1
        )
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("market_data", schema=None) as batch_op:
        batch_op.drop_index("ix_market_data_expiry")
    op.drop_table("market_data_latest")
    with op.batch_alter_table("data_connections", schema=None) as batch_op:
        for column in (
            "next_fetch_at",
            "consecutive_failures",
            "last_fetched_at",
            "last_tested_at",
            "last_error",
            "timeframes",
            "symbols",
            "api_key_hint",
            "credentials_key_id",
            "credentials_encrypted",
        ):
            batch_op.drop_column(column)
