"""service directory, referrals, consent, services delivered; receivers bound to an organisation

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 10:35:28.081747
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import discharge_bridge.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "directory_organisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("fhir_base_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("directory_organisation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_directory_organisation_code"), ["code"], unique=True)

    op.create_table(
        "directory_service",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("area", sa.JSON(), nullable=False),
        sa.Column("needs", sa.JSON(), nullable=False),
        sa.Column("min_age", sa.Integer(), nullable=True),
        sa.Column("max_age", sa.Integer(), nullable=True),
        sa.Column("disability_required", sa.Boolean(), nullable=False),
        sa.Column("residence_required", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("income_limit", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("eligibility_note", sa.Text(), nullable=True),
        sa.Column("documents", sa.JSON(), nullable=False),
        sa.Column("pays_for", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("capacity", sa.String(length=8), nullable=False),
        sa.Column("waiting_days", sa.Integer(), nullable=True),
        sa.Column("response_days", sa.Integer(), nullable=False),
        sa.Column("requires_consent", sa.Boolean(), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("hours", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["directory_organisation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("directory_service", schema=None) as batch_op:
        batch_op.create_index("ix_directory_service_category", ["category", "active"], unique=False)
        batch_op.create_index(batch_op.f("ix_directory_service_code"), ["code"], unique=True)
        batch_op.create_index(batch_op.f("ix_directory_service_organisation_id"), ["organisation_id"], unique=False)

    op.create_table(
        "consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("patient_fhir_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("given_by", sa.String(length=16), nullable=False),
        sa.Column("given_by_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("method", sa.String(length=24), nullable=False),
        sa.Column("witness", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("form_reference", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("organisation_ids", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("valid_from", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("valid_until", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("recorded_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["coordination_case.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index("ix_consent_patient", ["source_id", "patient_fhir_id", "status"], unique=False)

    op.create_table(
        "referral",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("needs", sa.JSON(), nullable=False),
        sa.Column("documents", sa.JSON(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=True),
        sa.Column("handoff_id", sa.Integer(), nullable=True),
        sa.Column("proposed_date", sa.Date(), nullable=True),
        sa.Column("requested_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("in_progress_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rejected_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answer_due_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reminder_task_id", sa.Integer(), nullable=True),
        sa.Column("remote_service_request_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("remote_task_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("remote_task_version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("updated_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["coordination_case.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consent.id"],
        ),
        sa.ForeignKeyConstraint(
            ["handoff_id"],
            ["handoff.id"],
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["directory_organisation.id"],
        ),
        sa.ForeignKeyConstraint(
            ["reminder_task_id"],
            ["case_task.id"],
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_service.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.create_index("ix_referral_answer_due", ["status", "answer_due_at"], unique=False)
        batch_op.create_index("ix_referral_case", ["case_id", "status"], unique=False)
        batch_op.create_index("ix_referral_organisation", ["organisation_id", "status", "id"], unique=False)

    op.create_table(
        "service_delivered",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("delivered_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", discharge_bridge.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["coordination_case.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("service_delivered", schema=None) as batch_op:
        batch_op.create_index("ix_service_delivered_at", ["delivered_at"], unique=False)
        batch_op.create_index("ix_service_delivered_case", ["case_id", "delivered_at"], unique=False)

    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organisation_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_app_user_organisation", "directory_organisation", ["organisation_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_constraint("fk_app_user_organisation", type_="foreignkey")
        batch_op.drop_column("organisation_id")

    with op.batch_alter_table("service_delivered", schema=None) as batch_op:
        batch_op.drop_index("ix_service_delivered_case")
        batch_op.drop_index("ix_service_delivered_at")

    op.drop_table("service_delivered")
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_index("ix_referral_organisation")
        batch_op.drop_index("ix_referral_case")
        batch_op.drop_index("ix_referral_answer_due")

    op.drop_table("referral")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_patient")

    op.drop_table("consent")
    with op.batch_alter_table("directory_service", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_service_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_directory_service_code"))
        batch_op.drop_index("ix_directory_service_category")

    op.drop_table("directory_service")
    with op.batch_alter_table("directory_organisation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_organisation_code"))

    op.drop_table("directory_organisation")
