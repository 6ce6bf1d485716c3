"""back into the EHR: the write-back outbox, SMART launch states, CDS Hooks token ids, screening
responses (BRASS, ISAR), the HOSPITAL score, per-source EHR settings, users' EHR identities (issue 19)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 11:07:48.388119
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import discharge_bridge.db

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cds_token_seen",
        sa.Column("jti", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("issuer", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("expires_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )
    with op.batch_alter_table("cds_token_seen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cds_token_seen_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "smart_launch_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("code_verifier", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("launch", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("created_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("smart_launch_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_smart_launch_state_state"), ["state"], unique=True)

    op.create_table(
        "screening_response",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("tool", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("band", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("completed_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["coordination_case.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("screening_response", schema=None) as batch_op:
        batch_op.create_index("ix_screening_response_case", ["case_id", "tool"], unique=False)

    op.create_table(
        "user_fhir_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("fhir_user", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user_fhir_identity", schema=None) as batch_op:
        batch_op.create_index("ix_user_fhir_identity", ["source_id", "fhir_user"], unique=True)
        batch_op.create_index(batch_op.f("ix_user_fhir_identity_user_id"), ["user_id"], unique=False)

    op.create_table(
        "writeback_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("resource_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("identifier", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("desired", sa.JSON(), nullable=False),
        sa.Column("desired_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sent_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_outcome", sa.JSON(), nullable=True),
        sa.Column("remote_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("remote_version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["coordination_case.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", "resource_type", "identifier"),
    )
    with op.batch_alter_table("writeback_item", schema=None) as batch_op:
        batch_op.create_index("ix_writeback_item_case", ["case_id"], unique=False)
        batch_op.create_index("ix_writeback_item_due", ["status", "next_attempt_at"], unique=False)

    with op.batch_alter_table("risk_assessment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hospital_score", sa.JSON(), nullable=True))

    with op.batch_alter_table("source", schema=None) as batch_op:
        batch_op.add_column(sa.Column("writeback", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("cds_hooks", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("smart_launch", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("source", schema=None) as batch_op:
        batch_op.drop_column("smart_launch")
        batch_op.drop_column("cds_hooks")
        batch_op.drop_column("writeback")

    with op.batch_alter_table("risk_assessment", schema=None) as batch_op:
        batch_op.drop_column("hospital_score")

    with op.batch_alter_table("writeback_item", schema=None) as batch_op:
        batch_op.drop_index("ix_writeback_item_due")
        batch_op.drop_index("ix_writeback_item_case")

    op.drop_table("writeback_item")
    with op.batch_alter_table("user_fhir_identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_fhir_identity_user_id"))
        batch_op.drop_index("ix_user_fhir_identity")

    op.drop_table("user_fhir_identity")
    with op.batch_alter_table("screening_response", schema=None) as batch_op:
        batch_op.drop_index("ix_screening_response_case")

    op.drop_table("screening_response")
    with op.batch_alter_table("smart_launch_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_smart_launch_state_state"))

    op.drop_table("smart_launch_state")
    with op.batch_alter_table("cds_token_seen", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cds_token_seen_expires_at"))

    op.drop_table("cds_token_seen")
