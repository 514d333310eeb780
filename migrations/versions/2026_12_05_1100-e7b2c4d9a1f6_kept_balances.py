"""kept balances: each execution connection's balances as its venue last reported them, for
sizing when the venue's request budget has no room for a fresh read

Revision ID: e7b2c4d9a1f6
Revises: d1a4b7c9e2f5
Create Date: 2026-12-05 11:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import UtcDateTime

revision: str = "e7b2c4d9a1f6"
down_revision: str | None = "d1a4b7c9e2f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kept_balances",
        sa.Column(
            "connection_id",
            sa.Integer(),
            sa.ForeignKey("execution_connections.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("balances", sa.JSON(), nullable=False),
        sa.Column("read_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kept_balances")
