"""analytics opening equity: a day's row keeps the equity snapshot taken at its first activity (or
at midnight UTC), and its drawdown percent is null when that is unknown; execution logs from
before `realized_pnl` existed get their position's realised PnL, on the day the old analytics
counted it (the close's, or the open's while the position is open)

Revision ID: c5e2a8d4f1b3
Revises: c3d9e8a2f1b7
Create Date: 2026-12-05 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import Money

revision: str = "c5e2a8d4f1b3"
down_revision: str | None = "c3d9e8a2f1b7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Logs of positions none of whose logs carries a realised figure (booked before the column
# existed): the position's whole realised PnL goes on one log, copied as it is (no arithmetic,
# so it stays exact on SQLite's text money too).
# A closed position's: on its last filled exit, the day the close was counted on before.
_LAST_EXIT = """
    UPDATE execution_logs SET realized_pnl = (
        SELECT p.realized_pnl FROM execution_positions AS p WHERE p.id = execution_logs.position_id
    )
    WHERE realized_pnl IS NULL AND purpose = 'exit' AND executed_at IS NOT NULL
      AND position_id IN (SELECT id FROM execution_positions WHERE status = 'closed')
      AND id = (
        SELECT x.id FROM execution_logs AS x
        WHERE x.position_id = execution_logs.position_id AND x.purpose = 'exit'
          AND x.executed_at IS NOT NULL
        ORDER BY x.executed_at DESC, x.id DESC LIMIT 1
      )
      AND NOT EXISTS (
        SELECT 1 FROM execution_logs AS booked
        WHERE booked.position_id = execution_logs.position_id
          AND booked.realized_pnl IS NOT NULL
      )
"""
# A position still held: what it realised so far (its entry fee, partial exits) on its entry.
_ENTRY = """
    UPDATE execution_logs SET realized_pnl = (
        SELECT p.realized_pnl FROM execution_positions AS p WHERE p.id = execution_logs.position_id
    )
    WHERE realized_pnl IS NULL AND purpose = 'entry' AND executed_at IS NOT NULL
      AND position_id IN (SELECT id FROM execution_positions WHERE status <> 'closed')
      AND NOT EXISTS (
        SELECT 1 FROM execution_logs AS booked
        WHERE booked.position_id = execution_logs.position_id
          AND booked.realized_pnl IS NOT NULL
      )
"""


def upgrade() -> None:
    with op.batch_alter_table("execution_analytics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opening_equity", Money(), nullable=True))
        batch_op.alter_column("max_drawdown_percent", existing_type=Money(), nullable=True)
    op.create_index(
        "ix_execution_logs_conn_executed",
        "execution_logs",
        ["execution_connection_id", "executed_at"],
        unique=False,
    )
    op.execute(_LAST_EXIT)
    op.execute(_ENTRY)


def downgrade() -> None:
    # The backfilled log figures stay: they are what those orders realised as the old
    # analytics counted it, and the previous revision has the column.
    op.drop_index("ix_execution_logs_conn_executed", table_name="execution_logs")
    op.execute(
        "UPDATE execution_analytics SET max_drawdown_percent = 0 WHERE max_drawdown_percent IS NULL"
    )
    with op.batch_alter_table("execution_analytics", schema=None) as batch_op:
        batch_op.alter_column("max_drawdown_percent", existing_type=Money(), nullable=False)
        batch_op.drop_column("opening_equity")
