"""identity on patient snapshots (name, identifiers, phone, address, search text); the access log

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 03:40:00

Existing Patient rows get their identity from the stored raw resource, in batches.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import discharge_bridge.db
from discharge_bridge.ingest.normalise import patient_identity

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("patient_snapshot") as batch:
        batch.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("identifiers", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("phone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("address", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("search_text", sa.String(length=600), nullable=True))
    _fill_identity()
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("patient_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_access_log_at", "access_log", ["at"])
    op.create_index("ix_access_log_user", "access_log", ["username", "at"])
    op.create_table(
        "access_log_patient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("patient_fhir_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["access_log.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_access_log_patient", "access_log_patient", ["source_id", "patient_fhir_id", "entry_id"])
    op.create_index("ix_access_log_patient_entry_id", "access_log_patient", ["entry_id"])


def _fill_identity() -> None:
    """Identity of the Patients already stored, read from their raw resource."""
    bind = op.get_bind()
    table = sa.table(
        "patient_snapshot",
        sa.column("id", sa.Integer),
        sa.column("raw", sa.JSON),
        sa.column("name", sa.String),
        sa.column("identifiers", sa.JSON),
        sa.column("phone", sa.String),
        sa.column("address", sa.String),
        sa.column("search_text", sa.String),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, table.c.raw).where(table.c.id > last).order_by(table.c.id).limit(_BATCH)
        ).all()
        if not rows:
            return
        for row_id, raw in rows:
            if isinstance(raw, dict):
                bind.execute(sa.update(table).where(table.c.id == row_id).values(**patient_identity(raw)))
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_table("access_log_patient")
    op.drop_table("access_log")
    with op.batch_alter_table("patient_snapshot") as batch:
        for column in ("search_text", "address", "phone", "identifiers", "name"):
            batch.drop_column(column)
