"""an index on the upper-cased Encounter class: the bed board's stay filter estimated right (issue 17)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 15:30:00

The board keeps the stays whose ``upper(class_code)`` is an inpatient class of the hospital's
mapping. PostgreSQL guesses 0.5% for a condition on an expression it has no statistics for: at
100,000 stays it expected 844 rows, joined the cases by merge on the hospital alone and filtered
50 million pairs (9.7 s). An index on the expression gives the planner its statistics (ANALYZE
gathers them), and a hash join takes 1.2 s.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_encounter_snapshot_class", "encounter_snapshot", [sa.text("upper(class_code)")])


def downgrade() -> None:
    op.drop_index("ix_encounter_snapshot_class", table_name="encounter_snapshot")
