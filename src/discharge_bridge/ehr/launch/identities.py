"""Who a user is in a hospital's EHR (``UserFhirIdentity``): the link a SMART launch is matched through.

Linking and unlinking are administration, audited (``user.link_ehr`` / ``user.unlink_ehr``). One
``fhirUser`` of a source belongs to one local user at most.
"""

from __future__ import annotations

import re

from sqlmodel import Session, col, select

from discharge_bridge.audit import AdminAction, Target, record_admin_action
from discharge_bridge.sources.models import Source
from discharge_bridge.users.models import User, UserFhirIdentity
from discharge_bridge.users.service import UserError, get_user

# SMART App Launch 2.0, "fhirUser": a Practitioner, PractitionerRole, Patient, RelatedPerson or Person.
_FHIR_USER = re.compile(r"^(Practitioner|PractitionerRole|Patient|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}$")


class IdentityError(UserError):
    """The message says why."""


def _source(session: Session, name: str) -> Source:
    source = session.exec(select(Source).where(Source.name == name)).first()
    if source is None or source.id is None:
        raise IdentityError(f"no source named {name!r}")
    return source


def link_ehr_user(session: Session, username: str, *, source_name: str, fhir_user: str, actor: str) -> bool:
    """Link; False when this exact link exists already. Raises IdentityError for a malformed reference
    or one linked to another user."""
    value = fhir_user.strip()
    if not _FHIR_USER.match(value):
        raise IdentityError(f"{value!r} is not a reference such as Practitioner/123")
    user = get_user(session, username)
    source = _source(session, source_name)
    existing = session.exec(
        select(UserFhirIdentity).where(UserFhirIdentity.source_id == source.id, UserFhirIdentity.fhir_user == value)
    ).first()
    if existing is not None:
        if existing.user_id == user.id:
            return False
        raise IdentityError(f"{value} of {source.name} is linked to another user: unlink it first")
    assert user.id is not None and source.id is not None
    session.add(UserFhirIdentity(user_id=user.id, source_id=source.id, fhir_user=value))
    details = {"source": source.name, "fhir_user": value}
    record_admin_action(session, actor, AdminAction.user_link_ehr, Target("user", user.username), details)
    session.flush()
    return True


def unlink_ehr_user(session: Session, username: str, *, source_name: str, actor: str) -> int:
    """Remove the user's links at that source; returns how many there were."""
    user = get_user(session, username)
    source = _source(session, source_name)
    rows = list(
        session.exec(
            select(UserFhirIdentity).where(UserFhirIdentity.user_id == user.id, UserFhirIdentity.source_id == source.id)
        )
    )
    for row in rows:
        session.delete(row)
    if rows:
        details = {"source": source.name, "fhir_user": ", ".join(r.fhir_user for r in rows)}
        record_admin_action(session, actor, AdminAction.user_unlink_ehr, Target("user", user.username), details)
    session.flush()
    return len(rows)


def ehr_identities(session: Session) -> dict[str, list[str]]:
    """Per user name, ``source:Practitioner/123`` for each link (for ``users list``)."""
    sources = {s.id: s.name for s in session.exec(select(Source))}
    users = {u.id: u.username for u in session.exec(select(User))}
    out: dict[str, list[str]] = {}
    query = select(UserFhirIdentity).order_by(col(UserFhirIdentity.source_id), col(UserFhirIdentity.fhir_user))
    for row in session.exec(query):
        out.setdefault(users.get(row.user_id, "?"), []).append(f"{sources.get(row.source_id, '?')}:{row.fhir_user}")
    return out
