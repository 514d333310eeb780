"""netting and margin: a preset decides whether an opposite signal reverses and where break-even
puts the stop; a position keeps its leverage, liquidation price, funding and refused exits; an
execution log keeps the PnL its fill realised (the day a partial exit counts on)

Revision ID: a1c4e7f2b9d0
Revises: 7c2a9e41d5b3
Create Date: 2026-12-04 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import Money, UtcDateTime

revision: str = "a1c4e7f2b9d0"
down_revision: str | None = "7c2a9e41d5b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trading_presets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "reverse_on_opposite", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(sa.Column("break_even_offset_percent", Money(), nullable=True))
    with op.batch_alter_table("execution_positions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leverage", Money(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("liquidation_price", Money(), nullable=True))
        batch_op.add_column(sa.Column("funding_fees", Money(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("exit_refusals", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("flagged_at", UtcDateTime(), nullable=True))
        # Break-even is measured from the risk taken at the open, and moves the stop past the
        # entry by the preset's offset (which covers the fees).
        batch_op.add_column(sa.Column("initial_sl_price", Money(), nullable=True))
        batch_op.add_column(sa.Column("break_even_offset_percent", Money(), nullable=True))
    with op.batch_alter_table("execution_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("realized_pnl", Money(), nullable=True))
        # Fees per currency (an order's fills may pay in several), and all of them in the quote
        # currency at the fills' time, as booked against the position.
        batch_op.add_column(sa.Column("fees", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("fee_in_quote", Money(), nullable=True))
    with op.batch_alter_table("paper_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reserved", Money(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("paper_orders", schema=None) as batch_op:
        batch_op.drop_column("reserved")
    with op.batch_alter_table("execution_logs", schema=None) as batch_op:
        batch_op.drop_column("fee_in_quote")
        batch_op.drop_column("fees")
        batch_op.drop_column("realized_pnl")
    with op.batch_alter_table("execution_positions", schema=None) as batch_op:
        for column in ("break_even_offset_percent", "initial_sl_price", "flagged_at"):
            batch_op.drop_column(column)
        for column in ("exit_refusals", "funding_fees", "liquidation_price"):
            batch_op.drop_column(column)
        batch_op.drop_column("leverage")
    with op.batch_alter_table("trading_presets", schema=None) as batch_op:
        batch_op.drop_column("break_even_offset_percent")
        batch_op.drop_column("reverse_on_opposite")
