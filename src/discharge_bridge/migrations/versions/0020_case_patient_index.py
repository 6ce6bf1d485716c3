"""an index on each case's patient: the assessment stage finds a batch's open cases by key (issue 17)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 22:10:00

Each assessment batch brings the open cases of its patients in line with their stays. Cases were
indexed by hospital and status only, so each batch read every open case of the hospital: 20 ms a
batch at 60,000 cases, growing with every case a 1M-resource backfill opened. The hospital leads:
SQLite's sampled statistics (``analysis_limit``) guess about 1,000 rows for any leading key, and led
by the patient the index looked no better than (source_id, status) for a batch of 500 patients.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_coordination_case_patient", "coordination_case", ["source_id", "patient_fhir_id"])


def downgrade() -> None:
    op.drop_index("ix_coordination_case_patient", table_name="coordination_case")
