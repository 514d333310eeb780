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


# Plain ALTER TABLE on both databases: a batch (copy-and-move) on SQLite would drop the table
# that logs and positions point at, and fail their foreign keys once rows exist.


def upgrade() -> None:
    op.add_column("execution_connections", sa.Column("egress", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("execution_connections", "egress")
