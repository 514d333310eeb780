"""positions fillfactor 70: the monitor rewrites every open position's price each tick; free room
on each page lets PostgreSQL write the new row version beside the old one (a HOT update) instead
of adding an entry to every index of the table

Revision ID: 7c2a9e41d5b3
Revises: 5d1ec81eae6f
Create Date: 2026-11-24 03:50:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c2a9e41d5b3"
down_revision: str | None = "5d1ec81eae6f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A storage parameter, PostgreSQL only (SQLite has none); it applies to pages written from
    # now on, so an existing table reaches it as rows are rewritten or after VACUUM FULL.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE execution_positions SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE execution_positions RESET (fillfactor)")
