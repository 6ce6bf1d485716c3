"""Tables of users, the hospitals each may see, browser sessions and API tokens.

Secrets are never stored: passwords as argon2 hashes, session and API tokens as SHA-256 digests
(they are long random strings, so a fast hash is enough and lets a lookup use the index).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow
from discharge_bridge.users.roles import Role


class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(max_length=200)
    role: Role = Field(sa_type=String(16))
    locale: str = Field(default="en", max_length=8)
    # A receiver's organisation (the service directory): the portal shows only its referrals.
    organisation_id: int | None = Field(default=None, foreign_key="directory_organisation.id", ondelete="SET NULL")
    password_hash: str | None = Field(default=None, max_length=200)  # None: a machine user (tokens only)
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class UserSource(SQLModel, table=True):
    """A hospital (source) a user may see. Admins see every hospital without rows here."""

    __tablename__ = "user_source"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True, ondelete="CASCADE")
    source_id: int = Field(foreign_key="source.id", primary_key=True, ondelete="CASCADE")


class WebSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds the token; ``csrf_token`` guards every form it posts."""

    __tablename__ = "web_session"
    __table_args__ = (Index("ix_web_session_user", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="app_user.id", ondelete="CASCADE")
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    """A bearer token for a machine (or a person's script); acts as its user, with the user's scope."""

    __tablename__ = "api_token"
    __table_args__ = (Index("ix_api_token_user", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", ondelete="CASCADE")
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)  # the first characters, to tell tokens apart in listings
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SigninThrottle(SQLModel, table=True):
    """Failed sign-ins in a row for one account name (as typed, whether it exists or not) or one
    client address. Kept in the database so every replica counts the same failures."""

    __tablename__ = "signin_throttle"
    __table_args__ = (Index("ix_signin_throttle_subject", "kind", "subject", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=8)  # "account" | "address"
    subject: str = Field(max_length=200)  # the user name, case-folded, or the client's IP address
    failures: int = 0
    last_failed_at: datetime = Field(sa_type=UTCDateTime)
    blocked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)  # no attempt is checked before
    locked: bool = False  # blocked_until is a lock (lock_failures reached), not a short wait
    forget_at: datetime = Field(sa_type=UTCDateTime, index=True)  # the row is dropped after this


class UserFhirIdentity(SQLModel, table=True):
    """Who a user is in a hospital's EHR (``fhirUser`` of a SMART launch, ``userId`` of a CDS hook),
    e.g. "Practitioner/123": a launch is matched to a local user through it, or refused."""

    __tablename__ = "user_fhir_identity"
    __table_args__ = (Index("ix_user_fhir_identity", "source_id", "fhir_user", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", ondelete="CASCADE", index=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    fhir_user: str = Field(max_length=300)
