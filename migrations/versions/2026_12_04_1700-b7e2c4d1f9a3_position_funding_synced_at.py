"""position funding watermark: the venue's funding settled up to this time is booked on the
position (derivatives venues report funding per symbol; each payment is booked once)

Revision ID: b7e2c4d1f9a3
Revises: b7d3e9a1c2f4
Create Date: 2026-12-04 17:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import UtcDateTime

revision: str = "b7e2c4d1f9a3"
down_revision: str | None = "b7d3e9a1c2f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("execution_positions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("funding_synced_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_positions", schema=None) as batch_op:
        batch_op.drop_column("funding_synced_at")
