"""cases: when every reason behind the flags was withdrawn

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import discharge_bridge.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("coordination_case") as batch_op:
        batch_op.add_column(
            sa.Column("flag_withdrawn_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("coordination_case") as batch_op:
        batch_op.drop_column("flag_withdrawn_at")
