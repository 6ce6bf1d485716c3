"""The receiver portal's API: the referrals addressed to the caller's organisation, one of them, an answer.

Only a receiver bound to an organisation gets anything; a referral of another organisation, or one
whose consent is missing or revoked, is a 404 like one that does not exist. What is shown is the
minimum of ``cases.referrals.portal``; every read that shows a person is written to the access log.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from discharge_bridge.cases.referrals.errors import ReferralNotFound
from discharge_bridge.cases.referrals.models import ReferralStatus
from discharge_bridge.cases.referrals.portal import PortalReferral, portal_move, portal_referral, portal_referrals
from discharge_bridge.deps import (
    Actor,
    CurrentPrincipal,
    IfMatch,
    SessionDep,
    SettingsDep,
    expected_version,
    log_view,
    require,
    set_etag,
)
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import LINES, Day, Id, PageSize, Version

router = APIRouter(
    prefix="/api/v1/portal", tags=["receiver portal"], dependencies=[Depends(require(Permission.receive_referrals))]
)
LIST_ROUTE = "api.portal.referrals"
ONE_ROUTE = "api.portal.referral"


class DocumentState(BaseModel):
    code: str | None
    label: str | None
    done: bool


class PortalReferralOut(BaseModel):
    """The minimum a receiving organisation needs (see cases/referrals/portal.py for why each)."""

    id: int
    status: ReferralStatus
    group: Literal["new", "in_progress", "done"]
    allowed_transitions: list[ReferralStatus]
    status_dates: dict[str, datetime | None]
    status_reason: str | None
    reason: str | None
    needs: list[str]
    documents: list[DocumentState]
    proposed_date: date | None
    answer_due_at: datetime | None
    service_name: str
    service_category: str
    hospital: str
    coordinator: str | None
    name: str | None
    age: int | None
    sex: str | None
    ward: str | None
    expected_discharge_at: datetime | None
    phone: str | None = Field(description="Only when the person's consent covers this organisation.")
    version: int


class PortalPage(BaseModel):
    items: list[PortalReferralOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null on the last page.")


ReceiverStatus = Literal["received", "accepted", "rejected", "in-progress", "completed"]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), LINES]


class PortalPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: ReceiverStatus | None = Field(
        default=None, description="The answer; omitted: only `proposed_date` changes (it must then be given)."
    )
    reason: Reason | None = Field(default=None, description="Why it is declined (status rejected): required then.")
    proposed_date: Day | None = Field(default=None, description="The date the organisation proposes for the help.")
    note: Reason | None = Field(default=None, description="With completed: what was delivered (kept on the service).")
    version: Version | None = Field(default=None, description="Alternative to If-Match.")


def _out(item: PortalReferral) -> PortalReferralOut:
    return PortalReferralOut(
        id=item.id,
        status=item.status,
        group=item.group,  # type: ignore[arg-type]
        allowed_transitions=item.allowed,
        status_dates=item.status_dates,
        status_reason=item.status_reason,
        reason=item.reason,
        needs=item.needs,
        documents=[DocumentState(**d) for d in item.documents],
        proposed_date=item.proposed_date,
        answer_due_at=item.answer_due_at,
        service_name=item.service_name,
        service_category=item.service_category,
        hospital=item.hospital,
        coordinator=item.coordinator,
        name=item.name,
        age=item.age,
        sex=item.sex,
        ward=item.ward,
        expected_discharge_at=item.expected_discharge_at,
        phone=item.phone,
        version=item.version,
    )


def _organisation(principal: Principal) -> int | None:
    return principal.organisation_id


def _one(session: SessionDep, principal: Principal, referral_id: int) -> PortalReferral:
    organisation = _organisation(principal)
    item = portal_referral(session, organisation, referral_id) if organisation is not None else None
    if item is None:
        raise ReferralNotFound(referral_id)
    log_view(session, principal, ONE_ROUTE, [item.patient])
    return item


@router.get("/referrals", response_model=PortalPage)
def portal_index(
    session: SessionDep,
    principal: CurrentPrincipal,
    after: Annotated[Id | None, Query(description="The `next_after` of the previous page.")] = None,
    limit: Annotated[PageSize, Query(le=200)] = 50,
) -> PortalPage:
    """The referrals addressed to the caller's organisation, by id (keyset pages)."""
    organisation = _organisation(principal)
    items = portal_referrals(session, organisation, after=after, limit=limit) if organisation is not None else []
    log_view(session, principal, LIST_ROUTE, [i.patient for i in items])
    return PortalPage(items=[_out(i) for i in items], next_after=items[-1].id if len(items) == limit else None)


@router.get("/referrals/{referral_id}", response_model=PortalReferralOut)
def portal_get(
    referral_id: Annotated[Id, Path()], session: SessionDep, principal: CurrentPrincipal, response: Response
) -> PortalReferralOut:
    item = _one(session, principal, referral_id)
    set_etag(response, item.version)
    return _out(item)


@router.patch(
    "/referrals/{referral_id}",
    response_model=PortalReferralOut,
    responses={
        409: {"description": "Stale version (`current_version`) or a move the referral's status forbids (`allowed`)."},
        428: {"description": "Neither If-Match nor `version` was sent."},
    },
)
def portal_patch(
    referral_id: Annotated[Id, Path()],
    body: PortalPatch,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    actor: Actor,
    if_match: IfMatch,
    response: Response,
) -> PortalReferralOut:
    """Answer: received, accepted, rejected (with `reason`), in-progress, completed (help delivered,
    recording a service delivered of the kind the catalogue ties to the service); or propose a date."""
    current = _one(session, principal, referral_id)
    expected = expected_version(f"referral {referral_id}", if_match, body.version, required=True)
    organisation = _organisation(principal)
    assert organisation is not None  # _one found the referral
    portal_move(
        session,
        organisation,
        referral_id,
        body.status or current.status,
        actor=actor,
        reason=body.reason,
        proposed_date=body.proposed_date,
        note=body.note,
        expected_version=expected,
        mappings_dir=settings.mappings_dir,
    )
    session.flush()
    item = portal_referral(session, organisation, referral_id)
    assert item is not None
    set_etag(response, item.version)
    return _out(item)
