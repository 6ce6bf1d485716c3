"""The ``admin_audit`` table and the names of the actions it records."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, Index, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class AdminAction(StrEnum):
    """What an administrator (or the sign-in guard) did. ``<target kind>.<verb>``."""

    user_add = "user.add"
    user_role = "user.role"  # role and/or hospitals changed
    user_password = "user.password"  # noqa: S105 (a new password was set; never the password itself)
    user_disable = "user.disable"
    user_link_ehr = "user.link_ehr"  # who the user is in a hospital's EHR (SMART launch, ehr/launch/)
    user_unlink_ehr = "user.unlink_ehr"
    token_create = "token.create"  # noqa: S105 (an action's name, not a secret)
    token_revoke = "token.revoke"  # noqa: S105
    signin_lock = "signin.lock"  # failed sign-ins locked an account or a client address
    signin_unlock = "signin.unlock"  # an administrator lifted a lock
    source_add = "source.add"
    source_edit = "source.edit"
    source_remove = "source.remove"
    source_sync_now = "source.sync_now"
    subscription_add = "subscription.add"  # Subscriptions created on the EHR for a source
    subscription_remove = "subscription.remove"
    deadletter_replay = "deadletter.replay"
    mapping_set = "mapping.set"
    rules_rescore = "rules.rescore"
    writeback_retry = "writeback.retry"  # the failed write-back items of a source sent again


class AdminAuditEntry(SQLModel, table=True):
    __tablename__ = "admin_audit"
    __table_args__ = (
        Index("ix_admin_audit_at", "at"),
        Index("ix_admin_audit_actor", "actor", "id"),
        Index("ix_admin_audit_target", "target_kind", "target_name", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor: str = Field(max_length=200)  # a user name, "cli:<os user>", or "sign-in" for the guard's locks
    action: str = Field(max_length=40)  # an AdminAction value
    target_kind: str = Field(max_length=40)  # "user", "token", "account", "address", "source"...
    target_name: str = Field(max_length=200)  # its name or id
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
