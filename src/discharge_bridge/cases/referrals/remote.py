"""Receivers with a FHIR server of their own (``Organisation.fhir_base_url``): the referral goes to
them as a ServiceRequest and a Task by REST, and their answers come back by reading the Task.

Both directions are one job (``sync_remote_referrals``), run by the scheduler: it takes ids and
gives each referral its own transaction, so one receiver that is down holds up no other, and no
HTTP call runs inside a request's transaction. Sending is a conditional create by our identifier
(``If-None-Exist``), so a job killed between the POST and the commit sends nothing twice. The
receiver's Task status is applied through ``move_referral`` as ``fhir:<organisation code>``; a
jump the table does not allow in one step (requested straight to in-progress) goes through the
steps between. Nothing about the patient is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from discharge_bridge.cases.consent.models import Consent
from discharge_bridge.cases.errors import CoordinationError
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.referrals.fhir import REFERRAL_SYSTEM, service_request, task
from discharge_bridge.cases.referrals.models import OPEN_REFERRAL, REFERRAL_TRANSITIONS, Referral, ReferralStatus
from discharge_bridge.cases.referrals.service import move_referral, service_of
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope, utcnow
from discharge_bridge.directory.models import Organisation
from discharge_bridge.sources.safety import SourceRefused, current_policy, vetted_client

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
BATCH = 200
CANCEL_NOTICE = timedelta(days=7)  # how long a cancellation made here is offered to the receiver's server


class RemoteReferralError(Exception):
    """A receiver's FHIR server refused or failed a request (the referral is retried on the next run)."""


@dataclass
class RemoteSync:
    sent: int = 0
    updated: int = 0
    failed: int = 0


def _client(client: httpx.Client | None) -> httpx.Client:
    """The directory names these servers, not hospital IT: each URL meets the sources' safety rules."""
    return client or vetted_client(current_policy(), field="fhir_base_url", timeout=10.0, headers={"Accept": FHIR_JSON})


def _post(client: httpx.Client, base: str, resource: dict[str, Any], identifier: str) -> dict[str, Any]:
    """Conditional create: the server answers with the one it already has for this identifier."""
    url = f"{base.rstrip('/')}/{resource['resourceType']}"
    headers = {
        "Content-Type": FHIR_JSON,
        "If-None-Exist": f"identifier={identifier}",
        "Prefer": "return=representation",
    }
    response = client.post(url, json=resource, headers=headers)
    if response.status_code >= 400:
        raise RemoteReferralError(f"POST {resource['resourceType']}: HTTP {response.status_code}")
    body = response.json() if response.content else {}
    if not body.get("id"):  # an existing match may come back without a body: read it by the identifier
        found = client.get(url, params={"identifier": identifier}).json()
        entries = found.get("entry") or []
        if not entries:
            raise RemoteReferralError(f"POST {resource['resourceType']}: no id in the answer")
        body = entries[0]["resource"]
    return dict(body)


def _remote_resources(
    session: Session, referral: Referral
) -> tuple[dict[str, Any], dict[str, Any], Organisation, str, str]:
    case = session.get(Case, referral.case_id)
    assert case is not None
    service, organisation = service_of(session, referral)
    consent = session.get(Consent, referral.consent_id) if referral.consent_id else None
    request = service_request(referral, case, service, organisation, consent)
    request.pop("supportingInfo", None)  # the Consent stays with us; the receiver gets the order and the task
    request.pop("id", None)
    job = task(referral, case, organisation)
    job.pop("id", None)
    return request, job, organisation, f"{REFERRAL_SYSTEM}|{referral.id}", f"{REFERRAL_SYSTEM}-task|{referral.id}"


def send_referral(session: Session, referral: Referral, client: httpx.Client) -> None:
    """POST the ServiceRequest, then the Task that points at it; store their ids on the referral."""
    request, job, organisation, request_key, task_key = _remote_resources(session, referral)
    base = organisation.fhir_base_url or ""
    sent_request = _post(client, base, request, request_key)
    reference = {"reference": f"ServiceRequest/{sent_request['id']}"}
    job["focus"], job["basedOn"] = reference, [reference]
    sent_task = _post(client, base, job, task_key)
    referral.remote_service_request_id = str(sent_request["id"])
    referral.remote_task_id = str(sent_task["id"])
    referral.remote_task_version = str((sent_task.get("meta") or {}).get("versionId") or "")
    session.add(referral)
    session.flush()


def _proposed(remote: dict[str, Any]) -> date | None:
    start = str((remote.get("executionPeriod") or {}).get("start") or "")
    try:
        return date.fromisoformat(start[:10]) if start else None
    except ValueError:
        return None


def apply_remote_task(session: Session, referral: Referral, remote: dict[str, Any], organisation: Organisation) -> bool:
    """Bring the referral level with the receiver's Task; False when it had nothing new."""
    version = str((remote.get("meta") or {}).get("versionId") or "")
    if version and version == referral.remote_task_version:
        return False
    try:
        target = ReferralStatus(str(remote.get("status")))
    except ValueError:
        log.warning("referral %s: the receiver's Task has a status we do not follow", referral.id)
        target = ReferralStatus(referral.status)
    reason = str((remote.get("statusReason") or {}).get("text") or "") or None
    proposed = _proposed(remote)
    actor = f"fhir:{organisation.code}"
    steps = REFERRAL_TRANSITIONS.path(ReferralStatus(referral.status), target)
    for step in steps:
        needs_reason = step in (ReferralStatus.rejected, ReferralStatus.cancelled)
        move_referral(
            session,
            referral,
            step,
            actor=actor,
            reason=(reason or "given by the receiver's system") if needs_reason else reason if step == target else None,
            proposed_date=proposed if step == target else None,
        )
    if not steps and proposed and proposed != referral.proposed_date and target == referral.status:
        move_referral(session, referral, target, actor=actor, proposed_date=proposed)
    referral.remote_task_version = version or referral.remote_task_version
    session.add(referral)
    session.flush()
    return True


def poll_referral(session: Session, referral: Referral, client: httpx.Client) -> bool:
    """Read the receiver's Task: apply its answer to an open referral, or tell the receiver about a
    cancellation made here (PUT the Task as cancelled, with our reason)."""
    _, organisation = service_of(session, referral)
    url = f"{(organisation.fhir_base_url or '').rstrip('/')}/Task/{referral.remote_task_id}"
    response = client.get(url)
    if response.status_code >= 400:
        raise RemoteReferralError(f"GET Task: HTTP {response.status_code}")
    remote = response.json()
    if ReferralStatus(referral.status) in OPEN_REFERRAL:
        return apply_remote_task(session, referral, remote, organisation)
    if remote.get("status") in {s.value for s in REFERRAL_TRANSITIONS.final}:
        return False  # the receiver has it as ended already
    cancelled = {**remote, "status": ReferralStatus.cancelled.value}
    if referral.status_reason:
        cancelled["statusReason"] = {"text": referral.status_reason}
    put = client.put(url, json=cancelled, headers={"Content-Type": FHIR_JSON})
    if put.status_code >= 400:
        raise RemoteReferralError(f"PUT Task: HTTP {put.status_code}")
    referral.remote_task_version = str(((put.json() if put.content else {}).get("meta") or {}).get("versionId") or "")
    session.add(referral)
    session.flush()
    return True


def _ids(session: Session, *, sent: bool) -> list[int]:
    query = (
        select(Referral.id)
        .join(Organisation, col(Organisation.id) == Referral.organisation_id)
        .where(col(Organisation.fhir_base_url).is_not(None))
        .order_by(col(Referral.id))
        .limit(BATCH)
    )
    if sent:  # open ones, and those cancelled here lately (the receiver is told)
        recent = utcnow() - CANCEL_NOTICE
        query = query.where(
            col(Referral.remote_task_id).is_not(None),
            or_(
                col(Referral.status).in_(OPEN_REFERRAL),
                and_(col(Referral.status) == ReferralStatus.cancelled, col(Referral.cancelled_at) > recent),
            ),
        )
    else:
        query = query.where(col(Referral.remote_task_id).is_(None), Referral.status == ReferralStatus.requested)
    return [i for i in session.exec(query) if i is not None]


def sync_remote_referrals(settings: Settings, *, client: httpx.Client | None = None) -> RemoteSync:
    """Send the referrals not yet sent to receivers with a FHIR server, then read back the Task of
    each open one already sent; each referral in its own transaction, a failure logged and retried."""
    engine = get_engine(settings)
    result = RemoteSync()
    http = _client(client)
    try:
        with session_scope(engine) as session:
            to_send, to_poll = _ids(session, sent=False), _ids(session, sent=True)
        for referral_id in to_send:
            try:
                with session_scope(engine) as session:
                    referral = session.get(Referral, referral_id)
                    if referral is not None and referral.remote_task_id is None:
                        send_referral(session, referral, http)
                        result.sent += 1
            except (RemoteReferralError, SourceRefused, httpx.HTTPError, ValueError) as exc:
                result.failed += 1
                log.warning("referral %s: not sent to the receiver's FHIR server: %s", referral_id, type(exc).__name__)
        for referral_id in to_poll:
            try:
                with session_scope(engine) as session:
                    referral = session.get(Referral, referral_id)
                    if referral is not None and poll_referral(session, referral, http):
                        result.updated += 1
            except (RemoteReferralError, SourceRefused, CoordinationError, httpx.HTTPError, ValueError) as exc:
                result.failed += 1
                log.warning("referral %s: the receiver's Task was not read: %s", referral_id, type(exc).__name__)
    finally:
        if client is None:
            http.close()
    return result
