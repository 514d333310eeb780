"""feed streams: a fetching data connection's mode (streaming or polling) and the lease of the
worker process streaming its prices

Revision ID: d4f8b2a6c3e1
Revises: a8d2f4b6c1e9
Create Date: 2026-12-06 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from execution_service.db import UtcDateTime

revision: str = "d4f8b2a6c3e1"
down_revision: str | None = "a8d2f4b6c1e9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("data_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("streamed_until", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("data_connections", schema=None) as batch_op:
        batch_op.drop_column("streamed_until")
        batch_op.drop_column("mode")
