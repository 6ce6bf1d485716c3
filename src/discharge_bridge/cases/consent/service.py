"""Consent to share a person's data with non-clinical organisations: record, revoke, find the one
that covers a referral.

A consent belongs to the patient (source + Patient id), not to one case: it outlives the admission
until it ends or is revoked. It covers a referral when it is active at that moment (``valid_from``
<= at < ``valid_until``) and names the receiving organisation or the service's category. Revoking
keeps the row (status inactive, who, when, why): the portal and new referrals stop seeing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from discharge_bridge.cases.consent.errors import ConsentAlreadyRevoked
from discharge_bridge.cases.consent.models import Consent, ConsentGiver, ConsentMethod, ConsentStatus
from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.cases.events import EventKind, record_event
from discharge_bridge.cases.models import Case
from discharge_bridge.db import utcnow
from discharge_bridge.directory.models import Organisation

FIELDS = frozenset(
    {
        "given_by",
        "given_by_name",
        "method",
        "witness",
        "form_reference",
        "organisation_ids",
        "categories",
        "valid_from",
        "valid_until",
    }
)


def _validate(values: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    unknown = set(values) - FIELDS
    if unknown:
        raise TypeError(f"not consent fields: {sorted(unknown)}")
    clean = {k: v for k, v in values.items() if v is not None}
    if "method" not in clean:
        raise InvalidInput(("body", "method"), "say how the consent was given: " + ", ".join(ConsentMethod))
    method = ConsentMethod(clean["method"])
    given_by = ConsentGiver(clean.get("given_by", ConsentGiver.patient))
    if method == ConsentMethod.verbal_witnessed and not clean.get("witness"):
        raise InvalidInput(("body", "witness"), "verbal consent needs the name of the witness")
    if (given_by != ConsentGiver.patient or method == ConsentMethod.guardian_signed) and not clean.get("given_by_name"):
        who = "a guardian" if given_by == ConsentGiver.patient else f"a {given_by}"
        raise InvalidInput(("body", "given_by_name"), f"consent given by {who} needs their name")
    organisation_ids = sorted({int(i) for i in clean.get("organisation_ids", [])})
    categories = sorted({str(c) for c in clean.get("categories", [])})
    if not organisation_ids and not categories:
        raise InvalidInput(
            ("body", "organisation_ids"), "name at least one organisation or category the person agreed to share with"
        )
    valid_from = clean.get("valid_from") or now
    valid_until = clean.get("valid_until")
    if valid_until is not None and valid_until <= valid_from:
        raise InvalidInput(("body", "valid_until"), "valid_until must be after valid_from")
    return {
        **clean,
        "given_by": given_by,
        "method": method,
        "organisation_ids": organisation_ids,
        "categories": categories,
        "valid_from": valid_from,
    }


def _summary(consent: Consent) -> dict[str, Any]:
    """What the timeline shows: how and to whom; no names (the witness, the guardian) in the log."""
    return {
        "consent_id": consent.id,
        "given_by": consent.given_by,
        "method": consent.method,
        "organisation_ids": consent.organisation_ids,
        "categories": consent.categories,
        "valid_until": consent.valid_until,
    }


def record_consent(session: Session, case: Case, values: Mapping[str, Any], *, actor: str) -> Consent:
    """Record a consent for the case's patient; InvalidInput names the field that is missing or wrong.

    Verbal consent needs a witness; a guardian or representative needs their name; ``valid_until``
    after ``valid_from``; at least one organisation or category.
    """
    assert case.id is not None
    now = utcnow()
    clean = _validate(values, now)
    unknown = [i for i in clean["organisation_ids"] if session.get(Organisation, i) is None]
    if unknown:
        raise InvalidInput(("body", "organisation_ids"), f"no organisation {unknown[0]} in the directory")
    consent = Consent(
        source_id=case.source_id,
        patient_fhir_id=case.patient_fhir_id,
        case_id=case.id,
        status=ConsentStatus.active,
        recorded_by=actor,
        recorded_at=now,
        **clean,
    )
    session.add(consent)
    session.flush()
    record_event(session, case, actor=actor, kind=EventKind.consent_recorded, at=now, data=_summary(consent))
    return consent


def revoke_consent(session: Session, consent: Consent, *, actor: str, reason: str) -> Consent:
    """Make the consent inactive from now on, keeping the row with who, when and why."""
    if ConsentStatus(consent.status) == ConsentStatus.inactive:
        raise ConsentAlreadyRevoked(consent.id)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(("body", "reason"), "say why the consent is revoked")
    now = utcnow()
    consent.status = ConsentStatus.inactive
    consent.revoked_at = now
    consent.revoked_by = actor
    consent.revoke_reason = reason
    session.add(consent)
    session.flush()
    case = _case_of(session, consent)
    if case is not None:
        record_event(
            session, case, actor=actor, kind=EventKind.consent_revoked, at=now, data={"consent_id": consent.id}
        )
    return consent


def _case_of(session: Session, consent: Consent) -> Case | None:
    """The case the consent was recorded on, else the patient's latest case (the event goes there)."""
    if consent.case_id is not None:
        case = session.get(Case, consent.case_id)
        if case is not None:
            return case
    query = (
        select(Case)
        .where(Case.source_id == consent.source_id, Case.patient_fhir_id == consent.patient_fhir_id)
        .order_by(col(Case.id).desc())
    )
    return session.exec(query).first()


def consents_of(session: Session, source_id: int, patient_fhir_id: str) -> list[Consent]:
    """Every consent of the patient, newest first, revoked ones included."""
    query = (
        select(Consent)
        .where(Consent.source_id == source_id, Consent.patient_fhir_id == patient_fhir_id)
        .order_by(col(Consent.recorded_at).desc(), col(Consent.id).desc())
    )
    return list(session.exec(query))


def covers(consent: Consent, *, organisation_id: int, category: str, at: datetime) -> bool:
    if ConsentStatus(consent.status) != ConsentStatus.active:
        return False
    if consent.valid_from > at or (consent.valid_until is not None and consent.valid_until <= at):
        return False
    return organisation_id in consent.organisation_ids or str(category) in consent.categories


def covering_consent(
    session: Session, *, source_id: int, patient_fhir_id: str, organisation_id: int, category: str, at: datetime
) -> Consent | None:
    """The newest active consent of the patient that names the organisation or the category at ``at``."""
    query = (
        select(Consent)
        .where(
            Consent.source_id == source_id,
            Consent.patient_fhir_id == patient_fhir_id,
            Consent.status == ConsentStatus.active,
        )
        .order_by(col(Consent.recorded_at).desc(), col(Consent.id).desc())
    )
    for consent in session.exec(query):
        if covers(consent, organisation_id=organisation_id, category=category, at=at):
            return consent
    return None


def get_consent(session: Session, consent_id: int, *, source_ids: list[int] | None) -> Consent | None:
    """A consent by id, if its hospital is in scope (None = all)."""
    consent = session.get(Consent, consent_id)
    if consent is None or (source_ids is not None and consent.source_id not in source_ids):
        return None
    return consent
