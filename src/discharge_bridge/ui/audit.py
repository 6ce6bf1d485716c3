"""The administration audit page (admins): sign-in locks, with a button to lift each, and the
audit trail of administration searched by who, what, target and dates. Linked from the access log."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from discharge_bridge.audit import AdminAction, AuditQuery, Target, record_admin_action, search_audit
from discharge_bridge.deps import SessionDep, require
from discharge_bridge.ui.day_range import DayRange
from discharge_bridge.ui.templating import PageRoute, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.users.throttle import ThrottleKind, active_locks, unlock

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Auditor = Annotated[Principal, Depends(require(Permission.audit_access))]
UserAdmin = Annotated[Principal, Depends(require(Permission.manage_users))]
PAGE = 100


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    principal: Auditor,
    session: SessionDep,
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=40)] = "",
    target: Annotated[str, Query(max_length=200)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    before_id: Annotated[int | None, Query(ge=1)] = None,
    unlocked: Annotated[str, Query(max_length=200)] = "",
    not_locked: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Dates are whole days in UTC (``until`` inclusive); a date that does not parse is ignored and said so."""
    days = DayRange.read(since, until)
    query = AuditQuery(
        actor=actor or None,
        action=action or None,
        target_name=target or None,
        since=days.since,
        until=days.until,
        before_id=before_id,
        limit=PAGE,
    )
    rows = search_audit(session, query)
    filters = {"actor": actor, "action": action, "target": target, "since": since, "until": until}
    kept = {k: v for k, v in filters.items() if v}
    api = {k: v for k, v in kept.items() if k in ("actor", "action", "target")}
    api |= days.api_params()
    return render(
        request,
        "audit.html",
        {
            "rows": rows,
            "locks": active_locks(session) if principal.can(Permission.manage_users) else None,
            "actions": [a.value for a in AdminAction],
            "filters": filters,
            "bad_dates": days.bad,
            "unlocked": unlocked,
            "not_locked": not_locked,
            "csv_url": "/api/v1/audit.csv" + (f"?{urlencode(api)}" if api else ""),
            "next_url": f"/audit?{urlencode({**kept, 'before_id': rows[-1].id})}" if len(rows) == PAGE else None,
        },
    )


@router.post("/audit/unlock")
def unlock_signin(
    principal: UserAdmin,
    session: SessionDep,
    kind: Annotated[ThrottleKind, Form()],
    subject: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    """Lift a sign-in lock of an account or an address; recorded in the audit trail."""
    lock = unlock(session, kind, subject)
    if lock is None:  # it ended meanwhile, or another admin lifted it
        return RedirectResponse(f"/audit?{urlencode({'not_locked': subject})}", status_code=303)
    details = {"failures": lock.failures, "was_locked_until": lock.until.isoformat()}
    target = Target(kind.value, lock.subject)
    record_admin_action(session, principal.username, AdminAction.signin_unlock, target, details)
    return RedirectResponse(f"/audit?{urlencode({'unlocked': subject})}", status_code=303)
