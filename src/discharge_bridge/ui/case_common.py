"""What the worklist and case pages share: the route class, who may do what, form parsing, redirects.

``CasePageRoute`` answers a refused change (a stale version, a move the status table forbids, a
closed case, a value the service rejects) with a page in the reader's language and the same
status code as the API, once the request's session has rolled back (see ``ui.errors``). The case
page's forms go further (``ui.case.CaseFormRoute``): they show the case page again with what was
typed, and ``refusal`` says what to tell the person and next to which field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.datastructures import FormData

from discharge_bridge.cases.errors import (
    CaseClosed,
    CaseNotFound,
    InvalidInput,
    InvalidTransition,
    NotFound,
    changed_meanwhile,
    refused,
)
from discharge_bridge.cases.handoffs.service import DocumentsMissing
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.repository import get_case
from discharge_bridge.deps import SessionDep, require
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_labels import N_
from discharge_bridge.ui.contact_labels import FLASH as CONTACT_FLASH
from discharge_bridge.ui.portal_labels import FLASH as PORTAL_FLASH
from discharge_bridge.ui.referral_labels import FLASH as REFERRAL_FLASH
from discharge_bridge.ui.templating import PageRoute, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id, digits

M = TypeVar("M", bound=BaseModel)
Reader = Annotated[Principal, Depends(require(Permission.read_cases))]
Coordinator = Annotated[Principal, Depends(require(Permission.coordinate))]
BarrierEditor = Annotated[Principal, Depends(require(Permission.edit_barriers))]

STALE = N_("Someone else changed this while you were editing it. Nothing was saved: reload the page and try again.")
STALE_KEPT = N_(
    "Someone else changed this while you were editing it. Nothing was saved: what you typed is kept here; "
    "compare it with the page as it is now and save again."
)
# Flash messages after a successful submit, by the code the redirect carries (no free text in URLs).
FLASH = {
    "assigned": N_("Coordinator changed."),
    "status": N_("Case status changed."),
    "kept": N_("The case stays open; your reason is on the timeline."),
    "same_person": N_("The two records are one person now; the next assessment reads both."),
    "dates": N_("Discharge dates saved."),
    "dates_unchanged": N_("The dates were already so: nothing changed."),
    "assessment": N_("Needs assessment saved."),
    "assessment_unchanged": N_("The assessment was already so: nothing changed."),
    "correction": N_("Flag check recorded."),
    "task_added": N_("Task added."),
    "task_moved": N_("Task status changed."),
    "handoff_added": N_("Handoff proposed."),
    "handoff_moved": N_("Handoff status changed."),
    "documents": N_("Documents checklist saved."),
    "barrier_added": N_("Barrier recorded."),
    "barrier_ended": N_("Barrier ended."),
    "opened": N_("Case opened."),
    "task_saved": N_("Task saved."),
    "task_unchanged": N_("The task was already so: nothing changed."),
    "handoff_saved": N_("Handoff saved."),
    "handoff_unchanged": N_("The handoff was already so: nothing changed."),
    **CONTACT_FLASH,  # the contacts section (ui/contact_labels.py)
    **REFERRAL_FLASH,  # the consent and referrals sections (ui/referral_labels.py)
    # the services delivered section (ui/services_delivered.py), worded as on the psychologist's page
    "service_recorded": PORTAL_FLASH["service_recorded"],
    "service_struck": PORTAL_FLASH["service_struck"],
}
# A refused value, next to its field, by the kind of problem pydantic (or the form reader) found.
FIELD_PROBLEMS = {
    "missing": N_("Fill this in."),
    "string_too_short": N_("Fill this in."),
    "string_too_long": N_("This is too long."),
    "enum": N_("Choose one of the options."),
    "literal_error": N_("Choose one of the options."),
    "datetime": N_("Not a date and time: pick one in the calendar."),
    "bool": N_("Choose yes or no."),
}
INVALID = N_("This value cannot be used.")
DOCUMENTS_MISSING = N_(
    "Missing: %(documents)s. Tick them in the checklist once they are ready, or say here why the handover goes "
    "ahead without them."
)
NOT_SAVED = N_("Not saved")


class CasePageRoute(PageRoute):
    """PageRoute with coordination errors in the reader's words (answered after the rollback)."""

    def error_response(self, request: Request, exc: Exception) -> Response:
        if refused(exc):
            return problem_page(request, exc)
        return super().error_response(request, exc)


def problem_page(request: Request, exc: Exception) -> Any:
    status = getattr(exc, "status_code", 409)
    detail = str(exc)
    if changed_meanwhile(exc):
        title, message, status = N_("Changed by someone else"), STALE, 409
    elif isinstance(exc, InvalidTransition):
        title, message = (
            N_("Not possible now"),
            N_("This step is not possible from the current status: reload the page."),
        )
    elif isinstance(exc, CaseClosed):
        title, message = N_("Not possible now"), N_("The case is closed: its plan and handoffs are read-only.")
    elif isinstance(exc, NotFound):
        title, message = N_("Not found"), N_("Not found, or it belongs to a hospital you do not work for.")
    elif isinstance(exc, InvalidInput):
        title, message = N_("Please check the form"), N_("A value in the form cannot be used.")
        detail = f"{'.'.join(str(p) for p in exc.loc[1:])}: {exc.message}"
    else:
        title, message = N_("Not possible now"), N_("The change was refused.")
    case_id = None if isinstance(exc, CaseNotFound) else request.path_params.get("case_id")
    return render(
        request,
        "case/problem.html",
        {"title": title, "message": message, "detail": detail, "case_id": case_id},
        status_code=status,
    )


class FormInvalid(InvalidInput):
    """A form value refused by the API's schema, with the kind of problem (pydantic's error type)."""

    def __init__(self, loc: tuple[str | int, ...], message: str, kind: str) -> None:
        super().__init__(loc, message)
        self.kind = kind


def _kind(error: ErrorDetails) -> str:
    kind = str(error.get("type", ""))
    return "datetime" if kind.startswith(("datetime", "timezone")) else kind


def refusal(request: Request, exc: Exception) -> dict[str, Any]:
    """The ``refused`` context of the form macros (``_macros/forms.html``) for a refused submit:
    the form's path, what it sent, the field at fault and the message in the reader's language;
    plus the status code and the page's title."""
    form = getattr(request.state, "form", None)
    typed: dict[str, Any] = {}
    if form is not None:
        for name in form:
            if name == "csrf_token":
                continue
            values = [v for v in form.getlist(name) if isinstance(v, str)]
            typed[name] = values[0] if len(values) == 1 else values
    field: str | None = None
    status = getattr(exc, "status_code", 409)
    if changed_meanwhile(exc):
        title, message, status = N_("Changed by someone else"), STALE_KEPT, 409
    elif isinstance(exc, DocumentsMissing):
        names = ", ".join(i18n.gettext(str(d["label"])) for d in exc.missing)
        text = i18n.gettext(DOCUMENTS_MISSING) % {"documents": names}
        return _refused(request, typed, "override_reason", status, N_("Documents missing"), text)
    elif isinstance(exc, InvalidTransition):
        title, message = N_("Not possible now"), N_("This step is not possible from the current status.")
    elif isinstance(exc, CaseClosed):
        title, message = N_("Not possible now"), N_("The case is closed: its plan and handoffs are read-only.")
    elif isinstance(exc, InvalidInput):
        title = N_("Please check the form")
        field = _field(exc.loc, typed)
        kind = exc.kind if isinstance(exc, FormInvalid) else ""
        known = FIELD_PROBLEMS.get(kind)
        message = known or INVALID
        if not known:  # the service's own words (English, as the API says them) after ours
            return _refused(request, typed, field, status, title, i18n.gettext(message) + " " + exc.message)
    else:
        title, message = N_("Not possible now"), N_("The change was refused.")
        detail = str(getattr(exc, "message", "")) or str(exc)
        return _refused(request, typed, field, status, title, i18n.gettext(message) + " " + detail)
    return _refused(request, typed, field, status, title, i18n.gettext(message))


def _refused(
    request: Request, typed: dict[str, Any], field: str | None, status: int, title: str, message: str
) -> dict[str, Any]:
    return {
        "action": request.url.path,
        "typed": typed,
        "field": field,
        "message": message,
        "title": i18n.gettext(title),
        "status": status,
    }


def _field(loc: tuple[str | int, ...], typed: dict[str, Any]) -> str | None:
    """The form's control a refused value came from: the last part of its location the form sent
    (``("form", "daily_living", "cook")`` -> ``cook``; ``("form", "domains", "social", "needs")`` ->
    ``social_needs``); None when the form has no such control (a hidden version, a header)."""
    parts = [str(p) for p in loc[1:]]
    for end in range(len(parts), 0, -1):
        for name in (parts[end - 1], "_".join(parts[end - 2 : end]) if end >= 2 else ""):
            if name and name in typed and name != "version":
                return name
    return None


def page_case(case_id: Annotated[Id, Path()], session: SessionDep, principal: Reader) -> Case:
    """The case if the reader may see its hospital; otherwise 404, exactly as the API answers."""
    case = get_case(session, case_id, source_ids=principal.scope)
    if case is None:
        raise CaseNotFound(case_id)
    return case


PageCase = Annotated[Case, Depends(page_case)]


async def form_data(request: Request) -> FormData:
    """The submitted form (already read, and cached, by the CSRF check of a cookie-borne POST);
    left on ``request.state.form`` too, so a refusal can show the form again as it was typed."""
    form = await request.form()
    request.state.form = form
    return form


Form = Annotated[FormData, Depends(form_data)]


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def version_of(form: FormData) -> int:
    """The version the form was rendered with: every change names it, so a stale one is refused."""
    version = digits(text(form, "version"))
    if version is None:
        raise InvalidInput(("form", "version"), "the form has no version: reload the page")
    return version


def local_datetime(value: str, timezone: str, field: str) -> datetime | None:
    """A ``datetime-local`` (or date) input read in the hospital's time zone; "" is None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FormInvalid(("form", field), f"not a date and time: {value!r}", "datetime") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return parsed


def local_input(value: datetime | None, timezone: str) -> str:
    """The value of a ``datetime-local`` input for a stored time (minutes, the hospital's zone)."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%dT%H:%M")


def validated(model: type[M], data: dict[str, Any]) -> M:
    """The form's values through the API's own schema; the first problem becomes a 422 page."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FormInvalid(("form", *first.get("loc", ())), str(first.get("msg", "invalid")), _kind(first)) from None


def back_to_case(case_id: int, flash: str, anchor: str = "") -> RedirectResponse:
    """Post/redirect/get: the case page again, with a message code and the section to scroll to."""
    target = f"/cases/{case_id}?{urlencode({'done': flash})}" + (f"#{anchor}" if anchor else "")
    return RedirectResponse(target, status_code=303)


def flash_message(code: str | None) -> str | None:
    found = FLASH.get(code or "")
    return i18n.gettext(found) if found else None
