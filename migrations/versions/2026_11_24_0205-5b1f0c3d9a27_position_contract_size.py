"""position contract size: units per lot for MetaTrader positions

Revision ID: 5b1f0c3d9a27
Revises: e3667c8564b4
Create Date: 2026-11-24 02:05:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import Money

revision: str = "5b1f0c3d9a27"
down_revision: str | None = "e3667c8564b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("execution_positions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contract_size", Money(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_positions", schema=None) as batch_op:
        batch_op.drop_column("contract_size")
