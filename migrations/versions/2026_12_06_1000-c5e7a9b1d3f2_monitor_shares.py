"""monitor shares: the position monitor's work split among worker processes by leases

Revision ID: c5e7a9b1d3f2
Revises: d4f8b2a6c3e1
Create Date: 2026-12-06 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import UtcDateTime

revision: str = "c5e7a9b1d3f2"
down_revision: str | None = "d4f8b2a6c3e1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitor_shares",
        sa.Column("share", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("share", name=op.f("pk_monitor_shares")),
    )
    op.create_table(
        "monitor_workers",
        sa.Column("instance", sa.String(length=100), nullable=False),
        sa.Column("alive_until", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("instance", name=op.f("pk_monitor_workers")),
    )


def downgrade() -> None:
    op.drop_table("monitor_workers")
    op.drop_table("monitor_shares")
