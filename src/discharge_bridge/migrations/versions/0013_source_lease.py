"""source leases: which worker polls a source now, and when it is due again

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 07:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import discharge_bridge.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_lease",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("acquired_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_due_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("source_id"),
    )
    op.create_index("ix_source_lease_expires_at", "source_lease", ["expires_at"])
    op.create_index("ix_source_lease_next_due_at", "source_lease", ["next_due_at"])


def downgrade() -> None:
    op.drop_index("ix_source_lease_next_due_at", table_name="source_lease")
    op.drop_index("ix_source_lease_expires_at", table_name="source_lease")
    op.drop_table("source_lease")
