"""held trailing stop: the callback percent of a trailing stop resting at the venue

Revision ID: a8d2f4b6c1e9
Revises: f3a9c1e5b7d2
Create Date: 2026-12-05 13:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import Money

revision: str = "a8d2f4b6c1e9"
down_revision: str | None = "f3a9c1e5b7d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("execution_positions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_trailing_percent", Money(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_positions", schema=None) as batch_op:
        batch_op.drop_column("held_trailing_percent")
