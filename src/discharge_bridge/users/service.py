"""Users, sign-in, browser sessions and API tokens. Services flush; the caller's session commits."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, delete, select

from discharge_bridge.config import get_settings
from discharge_bridge.db import utcnow
from discharge_bridge.sources.models import Source
from discharge_bridge.users.models import ApiToken, User, UserSource, WebSession
from discharge_bridge.users.passwords import password_problem
from discharge_bridge.users.principal import Principal, Via
from discharge_bridge.users.roles import Role

LOCALES = ("en", "ru")
TOKEN_PREFIX = "dbt_"  # noqa: S105 (marks our tokens for secret scanners)
_hasher = PasswordHasher()  # argon2id with the library's current parameters
# Verified when the user does not exist, so a wrong name costs as long as a wrong password: one
# per set of hashing parameters, so it always costs what the hasher in use costs.
_DUMMY_HASHES: dict[tuple[int, int, int], str] = {}


def _dummy_hash() -> str:
    key = (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = _hasher.hash(secrets.token_urlsafe(16))
    return _DUMMY_HASHES[key]


_dummy_hash()  # made at start, not on the first wrong name
# last_used_at / session touch at most this often: a read should not write on every request.
_TOUCH_EVERY = timedelta(minutes=5)


class UserError(ValueError):
    """A user command that cannot be carried out; the message says why."""


class UserExists(UserError):
    pass


class UserNotFound(UserError):
    pass


class WeakPassword(UserError):
    """The message names the rule the password breaks."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_strength(password: str, *, username: str | None = None, min_length: int | None = None) -> None:
    """The password rules (users/passwords.py); ``min_length`` defaults to the setting ``password_min_length``."""
    if min_length is None:
        min_length = get_settings().password_min_length
    problem = password_problem(password, username=username, min_length=min_length)
    if problem is not None:
        raise WeakPassword(problem)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True)
class UserView:
    username: str
    display_name: str
    role: Role
    locale: str
    disabled: bool
    sources: list[str]  # ["*"] for every hospital
    last_login_at: datetime | None
    tokens: int
    organisation_id: int | None = None  # a receiver's organisation (the service directory)


def get_user(session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise UserNotFound(f"no user named {username!r}")
    return user


def _source_ids(session: Session, names: list[str]) -> list[int]:
    found = {s.name: s.id for s in session.exec(select(Source).where(col(Source.name).in_(names)))}
    missing = sorted(set(names) - set(found))
    if missing:
        raise UserError(f"unknown source(s): {', '.join(missing)} (see `discharge-bridge sources list`)")
    return [i for i in found.values() if i is not None]


def add_user(
    session: Session,
    *,
    username: str,
    role: Role,
    sources: list[str],
    password: str | None,
    display_name: str | None = None,
    locale: str = "en",
    min_password_length: int | None = None,
    organisation_id: int | None = None,
) -> User:
    """A new user. Everyone but an admin or a receiver needs at least one hospital; a receiver needs
    an organisation of the service directory instead (and no hospital); ``password`` None = tokens only."""
    username = username.strip()
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        raise UserError("a user name is 1-64 characters without spaces")
    if locale not in LOCALES:
        raise UserError(f"language must be one of {', '.join(LOCALES)}")
    _check_organisation(role, organisation_id, sources)
    if role not in (Role.admin, Role.receiver) and not sources:
        raise UserError("give the hospitals (sources) this user may see: --source NAME (repeatable)")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise UserExists(f"a user named {username!r} exists already")
    if password is not None:
        check_password_strength(password, username=username, min_length=min_password_length)
    ids = _source_ids(session, sources) if sources else []
    user = User(
        username=username,
        display_name=(display_name or username).strip(),
        role=role,
        locale=locale,
        password_hash=hash_password(password) if password is not None else None,
        organisation_id=organisation_id,
    )
    session.add(user)
    session.flush()
    assert user.id is not None
    for sid in ids:
        session.add(UserSource(user_id=user.id, source_id=sid))
    session.flush()
    return user


def _check_organisation(role: Role, organisation_id: int | None, sources: list[str] | None) -> None:
    """A receiver works for one organisation and sees no hospital; no one else is bound to one."""
    if role == Role.receiver:
        if organisation_id is None:
            raise UserError("a receiver works for an organisation of the directory: --organisation CODE")
        if sources:
            raise UserError("a receiver sees the referrals sent to their organisation, not hospitals: drop --source")
    elif organisation_id is not None:
        raise UserError("only a receiver is bound to an organisation: drop --organisation")


def list_users(session: Session) -> list[UserView]:
    names = {s.id: s.name for s in session.exec(select(Source))}
    links: dict[int, list[str]] = {}
    for link in session.exec(select(UserSource)):
        links.setdefault(link.user_id, []).append(names.get(link.source_id, "?"))
    tokens: dict[int, int] = {}
    for token in session.exec(select(ApiToken).where(col(ApiToken.revoked_at).is_(None))):
        tokens[token.user_id] = tokens.get(token.user_id, 0) + 1
    views = []
    for user in session.exec(select(User).order_by(col(User.username))):
        assert user.id is not None
        sources = ["*"] if user.role == Role.admin else sorted(links.get(user.id, []))
        views.append(
            UserView(
                user.username,
                user.display_name,
                Role(user.role),
                user.locale,
                user.disabled,
                sources,
                user.last_login_at,
                tokens.get(user.id, 0),
                user.organisation_id,
            )
        )
    return views


def disable_user(session: Session, username: str) -> User:
    """Disable a user, end their sessions and revoke their tokens (effective on the next request)."""
    user = get_user(session, username)
    user.disabled = True
    session.add(user)
    session.exec(delete(WebSession).where(col(WebSession.user_id) == user.id))  # type: ignore[call-overload]
    now = utcnow()
    for token in session.exec(select(ApiToken).where(ApiToken.user_id == user.id, col(ApiToken.revoked_at).is_(None))):
        token.revoked_at = now
        session.add(token)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str, *, min_length: int | None = None) -> None:
    """A new password (it must pass the rules); the user's open sessions end."""
    user = get_user(session, username)
    check_password_strength(password, username=user.username, min_length=min_length)
    user.password_hash = hash_password(password)
    session.add(user)
    session.exec(delete(WebSession).where(col(WebSession.user_id) == user.id))  # type: ignore[call-overload]
    session.flush()


def change_role(
    session: Session,
    username: str,
    role: Role,
    sources: list[str] | None = None,
    *,
    organisation_id: int | None = None,
) -> dict[str, Any]:
    """A new role and, when given, a new list of hospitals (or, for a receiver, a new organisation);
    returns what changed ({} when nothing did). Leaving the receiver role unbinds the organisation.

    Effective on the user's next request: sessions and tokens act with the role stored now.
    """
    user = get_user(session, username)
    assert user.id is not None
    links = session.exec(select(UserSource).where(UserSource.user_id == user.id)).all()
    names = {s.id: s.name for s in session.exec(select(Source))}
    before_sources = sorted(names.get(link.source_id, "?") for link in links)
    ids = _source_ids(session, sources) if sources else None
    changed: dict[str, Any] = {}
    if role == Role.receiver:
        organisation = organisation_id if organisation_id is not None else user.organisation_id
        _check_organisation(role, organisation, sources)
    else:
        _check_organisation(role, organisation_id, sources)
        organisation = None
    if organisation != user.organisation_id:
        changed["organisation_id"] = {"from": user.organisation_id, "to": organisation}
        user.organisation_id = organisation
        session.add(user)
    if role not in (Role.admin, Role.receiver) and not (ids or links):
        raise UserError("give the hospitals (sources) this user may see: --source NAME (repeatable)")
    if Role(user.role) != role:
        changed["role"] = {"from": Role(user.role).value, "to": role.value}
        user.role = role
        session.add(user)
    if ids is not None and sorted(sources or []) != before_sources:
        session.exec(delete(UserSource).where(col(UserSource.user_id) == user.id))  # type: ignore[call-overload]
        for sid in ids:
            session.add(UserSource(user_id=user.id, source_id=sid))
        changed["sources"] = {"from": before_sources, "to": sorted(sources or [])}
    session.flush()
    return changed


def set_locale(session: Session, user_id: int, locale: str) -> None:
    if locale not in LOCALES:
        raise UserError(f"language must be one of {', '.join(LOCALES)}")
    user = session.get(User, user_id)
    if user is not None:
        user.locale = locale
        session.add(user)
        session.flush()


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The enabled user with this password, or None (the same work whether the name exists or not)."""
    user = session.exec(select(User).where(User.username == username.strip())).first()
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled or not user.password_hash:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    session.add(user)
    session.flush()
    return user


def visible_sources(session: Session, user: User) -> tuple[int, ...] | None:
    if user.role == Role.admin:
        return None
    if user.role == Role.receiver:
        return ()  # a receiver sees no hospital's lists: only referrals addressed to their organisation
    rows = session.exec(select(UserSource.source_id).where(UserSource.user_id == user.id))
    return tuple(sorted(rows))


def principal_of(session: Session, user: User, via: Via, csrf_token: str | None = None) -> Principal:
    return Principal(
        username=user.username,
        display_name=user.display_name,
        role=Role(user.role),
        source_ids=visible_sources(session, user),
        via=via,
        locale=user.locale,
        user_id=user.id,
        csrf_token=csrf_token,
        organisation_id=user.organisation_id,
    )


def start_session(session: Session, user: User, *, lifetime: timedelta) -> tuple[str, WebSession]:
    """A new browser session: returns the cookie value (shown once) and the row."""
    assert user.id is not None
    token = secrets.token_urlsafe(32)
    row = WebSession(
        token_hash=_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + lifetime,
    )
    session.add(row)
    session.flush()
    return token, row


def principal_for_session(session: Session, token: str, *, now: datetime | None = None) -> Principal | None:
    now = now or utcnow()
    row = session.exec(select(WebSession).where(WebSession.token_hash == _digest(token))).first()
    if row is None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return principal_of(session, user, Via.session, csrf_token=row.csrf_token)


def end_session(session: Session, token: str) -> None:
    session.exec(delete(WebSession).where(col(WebSession.token_hash) == _digest(token)))  # type: ignore[call-overload]
    session.flush()


def purge_expired_sessions(session: Session, *, now: datetime | None = None) -> int:
    result = session.exec(delete(WebSession).where(col(WebSession.expires_at) <= (now or utcnow())))  # type: ignore[call-overload]
    return int(result.rowcount or 0)


def issue_token(session: Session, username: str, name: str) -> str:
    """A new API token for the user; the value is returned once and only its digest is kept."""
    user = get_user(session, username)
    if user.disabled:
        raise UserError(f"{username!r} is disabled")
    assert user.id is not None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=_digest(token), prefix=token[:10]))
    session.flush()
    return token


def revoke_tokens(session: Session, username: str, name: str) -> int:
    """Revoke the user's live tokens called ``name``; how many (an unknown name is an error)."""
    user = get_user(session, username)
    now = utcnow()
    live = session.exec(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.name == name, col(ApiToken.revoked_at).is_(None))
    ).all()
    if not live:
        raise UserError(f"{username!r} has no live token named {name!r}")
    for token in live:
        token.revoked_at = now
        session.add(token)
    session.flush()
    return len(live)


def principal_for_token(session: Session, token: str, *, now: datetime | None = None) -> Principal | None:
    now = now or utcnow()
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == _digest(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        row.last_used_at = now
        session.add(row)
    return principal_of(session, user, Via.token)


def coordinators_of(session: Session, source_id: int) -> list[User]:
    """The enabled coordinators who may see this hospital, by user name (the assignment pool)."""
    query = (
        select(User)
        .join(UserSource, col(UserSource.user_id) == User.id)
        .where(UserSource.source_id == source_id, User.role == Role.coordinator, col(User.disabled).is_(False))
        .order_by(col(User.username))
    )
    return list(session.exec(query))
