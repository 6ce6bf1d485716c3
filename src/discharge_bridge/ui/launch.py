"""SMART App Launch pages: ``/launch`` (EHR launch with ``iss`` + ``launch``, or standalone with
``source``), ``/launch/callback`` (the EHR's authorization server comes back here) and
``/launch/patient`` (the launched patient has no case here).

The callback starts our own web session for the matched user, as the sign-in form does, and sends
the browser on to the case page. The cookie stays ``SameSite=Lax``: the EHR opens the app in a new
window (a top-level navigation, which carries Lax cookies). Inside an EHR's iframe the cookie would
need ``SameSite=None; Secure`` and the pages would have to allow that EHR in ``frame-ancestors``;
every page refuses framing (api/headers.py), so the embedded mode is not offered.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from discharge_bridge.config import Settings
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SESSION_COOKIE, SessionDep, SettingsDep, log_view
from discharge_bridge.ehr.launch import service
from discharge_bridge.ehr.launch.context import landing
from discharge_bridge.ehr.launch.service import LaunchRefused
from discharge_bridge.sources.errors import SourceNotFound
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.safety import SourcePolicy
from discharge_bridge.sources.service import get_source
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_common import Reader
from discharge_bridge.ui.signin import _secure
from discharge_bridge.ui.templating import PageRoute, render
from discharge_bridge.users.roles import Permission
from discharge_bridge.users.service import start_session

ROUTE = "ui.launch.patient"
# The state of the launch this browser started: the callback must come back to the same browser, so a
# code and state obtained by someone else cannot sign a victim's browser in as them (login CSRF).
LAUNCH_COOKIE = "discharge_bridge_launch"
router = APIRouter(route_class=PageRoute, include_in_schema=False)
Param = Annotated[str | None, Query(max_length=500)]
Name = Annotated[str | None, Query(max_length=64)]


def N_(message: str) -> str:
    return message


# What each refusal tells the person at the EHR; the details (a reason code) go to nobody's screen.
REASONS = {
    service.UNKNOWN_ISSUER: N_("This EHR is not connected to the discharge service for launching it."),
    service.NOT_CONFIGURED: N_("Launching from this hospital's EHR is not set up."),
    service.BAD_STATE: N_("This sign-in link is not one we started. Launch the app again from the EHR."),
    service.EXPIRED: N_("The sign-in took too long. Launch the app again from the EHR."),
    service.REPLAYED: N_("This sign-in link was already used. Launch the app again from the EHR."),
    service.NO_PATIENT: N_("The EHR did not say which patient to open."),
    service.NO_FHIR_USER: N_("The EHR did not say who you are."),
    service.UNLINKED: N_("Your EHR account is not linked to a user of the discharge service. Ask hospital IT."),
    service.DISABLED: N_("Your account of the discharge service is disabled."),
    service.NO_HOSPITAL: N_("Your account of the discharge service does not cover this hospital."),
    "server_unreachable": N_("The EHR's sign-in service could not be reached. Try again later."),
    "server_error": N_("The EHR's sign-in service answered something we cannot use. Ask hospital IT."),
    "token_refused": N_("The EHR refused the sign-in. Launch the app again from the EHR."),
    "bad_id_token": N_("The EHR's proof of who you are could not be verified. Ask hospital IT."),
    "ehr_error": N_("The EHR did not allow the launch."),
    "bad_request": N_("This launch link is incomplete."),
}
STATUS = {service.UNLINKED: 403, service.DISABLED: 403, service.NO_HOSPITAL: 403, service.UNKNOWN_ISSUER: 403}


def _refusal(request: Request, reason: str) -> Response:
    i18n.set_language(request.cookies.get("lang") or i18n.pick_language(request.headers.get("accept-language")))
    message = i18n.gettext(REASONS.get(reason, REASONS["bad_request"]))
    context = {"title": N_("The app could not open"), "message": message}
    return render(request, "launch/refused.html", context, STATUS.get(reason, 400))


def redirect_uri(request: Request, settings: Settings) -> str:
    """Where the EHR sends the browser back: under the public URL when one is set (behind a proxy)."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/launch/callback"
    return str(request.url_for("launch_callback"))


@router.get("/launch")
def launch(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    iss: Param = None,
    launch: Param = None,
    source: Name = None,
) -> Response:
    """EHR launch (``iss`` and ``launch``) or standalone launch (``source``): off to the EHR's authorization."""
    try:
        if iss:
            if not launch:
                return _refusal(request, "bad_request")
            found: Source = service.source_for_issuer(session, iss)
        elif source:
            found = service.source_named(session, source)
        else:
            return _refusal(request, "bad_request")
        back = redirect_uri(request, settings)
        url = service.begin(
            session, found, launch=launch or None, redirect_uri=back, now=utcnow(), policy=SourcePolicy.of(settings)
        )
    except LaunchRefused as refused:
        return _refusal(request, refused.reason)
    response = RedirectResponse(url, status_code=302)
    state = parse_qs(urlsplit(url).query)["state"][-1]
    response.set_cookie(
        LAUNCH_COOKIE,
        state,
        httponly=True,
        samesite="lax",  # sent on the authorization server's top-level redirect back to us
        secure=_secure(request, settings),
        max_age=int(service.STATE_LIFETIME.total_seconds()),
        path="/launch/callback",
    )
    return response


@router.get("/launch/callback", name="launch_callback")
def launch_callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: Param = None,
    state: Annotated[str | None, Query(max_length=128)] = None,
    error: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """Signs the matched user in and sends the browser to the launched patient's case."""
    if error:
        return _refusal(request, "ehr_error")
    if not code or not state:
        return _refusal(request, "bad_request")
    started = request.cookies.get(LAUNCH_COOKIE, "")
    if not started or not secrets.compare_digest(started.encode(), state.encode()):
        return _refusal(request, service.BAD_STATE)  # not this browser's launch: its state stays unspent
    try:
        result = service.complete(
            session,
            state=state,
            code=code,
            redirect_uri=redirect_uri(request, settings),
            now=utcnow(),
            policy=SourcePolicy.of(settings),
        )
    except LaunchRefused as refused:
        return _refusal(request, refused.reason)
    assert result.source.id is not None
    found = landing(session, result.source.id, result.patient, result.encounter)
    if found.case_id is not None:
        target = f"/cases/{found.case_id}"
    else:
        target = "/launch/patient?" + _query(result.source.name, result.patient, result.encounter)
    token, _ = start_session(session, result.user, lifetime=timedelta(hours=settings.session_hours))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",  # a new window, not an iframe: see the module's docstring
        secure=_secure(request, settings),
        max_age=settings.session_hours * 3600,
        path="/",
    )
    return response


def _query(source: str, patient: str, encounter: str | None) -> str:
    params = {"source": source, "patient": patient}
    if encounter:
        params["encounter"] = encounter
    return urlencode(params)


@router.get("/launch/patient", response_class=HTMLResponse)
def launch_patient(
    request: Request,
    session: SessionDep,
    principal: Reader,
    source: Annotated[str, Query(max_length=64)],
    patient: Annotated[str, Query(max_length=64)],
    encounter: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The launched patient has no case here: their stored admissions, each with "open a case" for a
    coordinator, or a line saying this service holds no admission of theirs."""
    try:
        found = get_source(session, source, source_ids=principal.scope)
    except SourceNotFound:
        return _refusal(request, service.NO_HOSPITAL)
    assert found.id is not None
    where = landing(session, found.id, patient, encounter)
    if where.case_id is not None:  # opened meanwhile
        return RedirectResponse(f"/cases/{where.case_id}", status_code=303)
    log_view(session, principal, ROUTE, [(found.id, patient)])
    context = {
        "source": found,
        "patient": patient,
        "encounter": encounter,
        "admissions": where.admissions,
        "can_open": principal.can(Permission.coordinate),
    }
    return render(request, "launch/patient.html", context)
