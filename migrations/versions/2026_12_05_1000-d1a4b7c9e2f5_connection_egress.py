"""connection egress: the name of an operator-defined egress group (an HTTP proxy, its own
request budget per venue) a ccxt connection goes out by; null goes out directly

Revision ID: d1a4b7c9e2f5
Revises: c5e2a8d4f1b3
Create Date: 2026-12-05 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d1a4b7c9e2f5"
down_revision: str | None = "c5e2a8d4f1b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("execution_connections") as batch:
        batch.add_column(sa.Column("egress", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_connections") as batch:
        batch.drop_column("egress")
