"""indexes that match the lists' filters and orders (issue 17)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 08:00:00

- ``ix_case_task_case_due`` (case_id, status, due_at): a case's next active task due (the
  worklist's "next due" column and sort, the overdue / today / this week filters) is read from the
  index alone, the soonest first, instead of every task of the case.
- ``ix_encounter_snapshot_start`` (period_start): the worklist sorted by admission (newest first,
  or longest stay) walks admissions in order and stops after a page.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_case_task_case_due", "case_task", ["case_id", "status", "due_at"])
    op.create_index("ix_encounter_snapshot_start", "encounter_snapshot", ["period_start"])


def downgrade() -> None:
    op.drop_index("ix_encounter_snapshot_start", table_name="encounter_snapshot")
    op.drop_index("ix_case_task_case_due", table_name="case_task")
