"""patient aliases: Patient.link (merged records, possible duplicates)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 22:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import discharge_bridge.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patient_alias",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("alias_id", sa.String(length=64), nullable=False),
        sa.Column("survivor_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seen_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("confirmed_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", "alias_id", "survivor_id", "kind"),
    )
    op.create_index("ix_patient_alias_survivor", "patient_alias", ["source_id", "survivor_id"])


def downgrade() -> None:
    op.drop_index("ix_patient_alias_survivor", table_name="patient_alias")
    op.drop_table("patient_alias")
