"""the dead-letter list's index: a source's letters, the most recently seen first (issue 17)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 11:00:00

Hospital IT pages a source's dead letters by cursor (last_seen, id descending); with this index a
page is one index range however many letters a broken feed has left.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_dead_letter_list", "dead_letter", ["source_id", "last_seen", "id"])


def downgrade() -> None:
    op.drop_index("ix_dead_letter_list", table_name="dead_letter")
