"""The receiver portal's pages ("Gravity Light"): the referrals sent to the reader's organisation
(new, in progress, done) and one referral with the answers a receiver gives.

The data is ``cases.referrals.portal``'s minimum, nothing else; each page view is written to the
access log. The forms answer through the same service as the API (``portal_move``), for the
version the page was rendered with, then redirect back (PRG). A referral of another organisation,
or one whose consent is missing or revoked, is a 404 page.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.cases.referrals.errors import ReferralNotFound
from discharge_bridge.cases.referrals.portal import PortalReferral, portal_move, portal_referral, portal_referrals
from discharge_bridge.deps import SessionDep, SettingsDep, log_view, require
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_common import CasePageRoute, Form, text, version_of
from discharge_bridge.ui.portal_labels import flash, label
from discharge_bridge.ui.templating import language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id

router = APIRouter(route_class=CasePageRoute, include_in_schema=False)
Receiver = Annotated[Principal, Depends(require(Permission.receive_referrals))]
LIST_ROUTE = "ui.portal"
ONE_ROUTE = "ui.portal.referral"
GROUPS = ("new", "in_progress", "done")
ANSWERS = ("received", "accepted", "rejected", "in-progress", "completed")


def _one(session: SessionDep, principal: Principal, referral_id: int) -> PortalReferral:
    organisation = principal.organisation_id
    item = portal_referral(session, organisation, referral_id) if organisation is not None else None
    if item is None:
        raise ReferralNotFound(referral_id)
    return item


@router.get("/portal")
def portal_page(
    request: Request,
    session: SessionDep,
    principal: Receiver,
    after: Annotated[Id | None, Query()] = None,
) -> Response:
    """The organisation's referrals, grouped new / in progress / done, 100 a page by id."""
    organisation = principal.organisation_id
    items = portal_referrals(session, organisation, after=after, limit=100) if organisation is not None else []
    log_view(session, principal, LIST_ROUTE, [i.patient for i in items])
    grouped: dict[str, list[PortalReferral]] = {g: [] for g in GROUPS}
    for item in items:
        grouped[item.group].append(item)
    context: dict[str, Any] = {
        "groups": [(g, label("portal_group", g), grouped[g]) for g in GROUPS],
        "label": label,
        "next_after": items[-1].id if len(items) == 100 else None,
        "bound": organisation is not None,
    }
    return render(request, "portal.html", context)


@router.get("/portal/referrals/{referral_id}")
def portal_referral_page(
    request: Request,
    referral_id: Annotated[Id, Path()],
    session: SessionDep,
    principal: Receiver,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    i18n.set_language(language_of(request))
    item = _one(session, principal, referral_id)
    log_view(session, principal, ONE_ROUTE, [item.patient])
    context = {
        "r": item,
        "label": label,
        "flash": flash(done),
        "refused": None,
        "moves": [m for m in item.allowed if m.value in ANSWERS],
        "can_propose": item.group != "done",
    }
    return render(request, "portal/referral.html", context)


@router.post("/portal/referrals/{referral_id}")
def portal_answer(
    referral_id: Annotated[Id, Path()],
    session: SessionDep,
    settings: SettingsDep,
    principal: Receiver,
    form: Form,
) -> RedirectResponse:
    """One answer (``status``), or with ``status`` empty a proposed date alone."""
    current = _one(session, principal, referral_id)
    status = text(form, "status")
    if status and status not in ANSWERS:
        raise InvalidInput(("form", "status"), f"not an answer: {status!r}")
    proposed = _date(text(form, "proposed_date"))
    assert principal.organisation_id is not None  # _one found the referral
    portal_move(
        session,
        principal.organisation_id,
        referral_id,
        status or current.status,
        actor=principal.username,
        reason=text(form, "reason") or None,
        proposed_date=proposed,
        note=text(form, "note") or None,
        expected_version=version_of(form),
        mappings_dir=settings.mappings_dir,
    )
    code = status or "date"
    return RedirectResponse(f"/portal/referrals/{referral_id}?done={code}", status_code=303)


def _date(value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(("form", "proposed_date"), f"not a date: {value!r}") from None
