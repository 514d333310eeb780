"""venue protection: presets say whether SL/TP rest at the venue; the levels resting there on
each position (the protective
orders themselves are execution logs: purpose `protect`, order type `stop` or `target`)

Revision ID: f3a9c1e5b7d2
Revises: e7b2c4d9a1f6
Create Date: 2026-12-05 12:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import Money

revision: str = "f3a9c1e5b7d2"
down_revision: str | None = "e7b2c4d9a1f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trading_presets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stops_on_venue", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("execution_positions", schema=None) as batch_op:
        # The levels the venue holds for it (the monitor emulates a level only when it differs).
        batch_op.add_column(sa.Column("held_sl_price", Money(), nullable=True))
        batch_op.add_column(sa.Column("held_tp_price", Money(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_positions", schema=None) as batch_op:
        batch_op.drop_column("held_tp_price")
        batch_op.drop_column("held_sl_price")
    with op.batch_alter_table("trading_presets", schema=None) as batch_op:
        batch_op.drop_column("stops_on_venue")
