"""The service directory's pages: the list with filters, a service, an organisation, the admins' forms
(add, change, import), and the "Suggested services" part of the case page.

Every form goes through the same schemas and services as the API; a refused form comes back as typed
(422) with each message next to its field. The directory is the city's: every reader sees all of it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from discharge_bridge.cases.errors import NotFound
from discharge_bridge.cases.referrals.suggestions import suggestions_for_case
from discharge_bridge.deps import CurrentCase, SessionDep, log_view, require
from discharge_bridge.directory import csv_io, fhir_io
from discharge_bridge.directory.errors import DirectoryError, ImportRefused, InvalidDirectoryInput
from discharge_bridge.directory.imports import UPLOAD_MAX
from discharge_bridge.directory.models import DirectoryService, Organisation, ServiceCategory
from discharge_bridge.directory.schemas import (
    NEED_DOMAINS,
    OrganisationIn,
    OrganisationPatch,
    ServiceIn,
    ServicePatch,
)
from discharge_bridge.directory.service import (
    create_organisation,
    create_service,
    get_organisation,
    get_service,
    list_organisations,
    list_services,
    organisations_by_id,
    update_organisation,
    update_service,
)
from discharge_bridge.ui import directory_labels as labels
from discharge_bridge.ui.i18n import N_, gettext, set_language
from discharge_bridge.ui.templating import PageRoute, language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id, Line

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Reader = Annotated[Principal, Depends(require(Permission.read_directory))]
Manager = Annotated[Principal, Depends(require(Permission.manage_directory))]
CaseReader = Annotated[Principal, Depends(require(Permission.read_cases))]
NOTICES = {
    "saved": N_("Saved."),
    "imported": N_("The directory was imported."),
}
SERVICE_TEXT = [
    "code",
    "name",
    "description",
    "residence_required",
    "income_limit",
    "eligibility_note",
    "pays_for",
    "phone",
    "email",
    "hours",
]
SERVICE_NUMBERS = ["min_age", "max_age", "waiting_days", "response_days"]
SERVICE_FLAGS = ["disability_required", "requires_consent", "active"]
ORGANISATION_TEXT = ["code", "name", "phone", "email", "address", "fhir_base_url"]


def _context(**extra: Any) -> dict[str, Any]:
    return {"labels": labels, "categories": list(ServiceCategory), "need_domains": NEED_DOMAINS, **extra}


# -- the list ------------------------------------------------------------------------------------


@router.get("/directory", response_class=HTMLResponse)
def directory_page(
    request: Request,
    principal: Reader,
    session: SessionDep,
    q: Annotated[Line, Query()] = "",
    category: Annotated[str, Query(max_length=32)] = "",
    inactive: Annotated[bool, Query()] = False,
    done: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    chosen = category if category in {c.value for c in ServiceCategory} else None
    services = list_services(session, category=chosen, search=q or None, active_only=not inactive)
    organisations = organisations_by_id(session, (s.organisation_id for s in services))
    set_language(language_of(request))
    filters = {k: v for k, v in {"q": q, "category": chosen or ""}.items() if v}
    return render(
        request,
        "directory.html",
        _context(
            title=gettext("Service directory"),
            rows=[(s, organisations[s.organisation_id]) for s in services],
            filters={"q": q, "category": chosen or "", "inactive": inactive},
            manager=principal.can(Permission.manage_directory),
            notice=gettext(NOTICES[done]) if done in NOTICES else None,
            organisations=list_organisations(session),
            query=urlencode(filters),
        ),
    )


@router.post("/directory/import", response_class=HTMLResponse)
async def directory_import(request: Request, principal: Manager, session: SessionDep) -> Response:
    """A CSV file or a FHIR Bundle (.json), all or nothing; a refused file lists every problem."""
    form = await request.form()
    upload = form.get("file")
    problems: list[tuple[int, str, str]] = []
    if not isinstance(upload, UploadFile) or not upload.filename:
        problems = [(0, "file", gettext("Choose a file to import."))]
    else:
        raw = await upload.read(UPLOAD_MAX + 1)
        try:
            if len(raw) > UPLOAD_MAX:
                raise ImportRefused([(0, "file", "the file is larger than 5 MB")])
            text = raw.decode("utf-8")
            if upload.filename.lower().endswith(".json"):
                import_json(session, text, principal.username, upload.filename)
            else:
                csv_io.import_csv(session, text, actor=principal.username, what=upload.filename)
        except UnicodeDecodeError:
            problems = [(0, "file", gettext("The file is not UTF-8 text."))]
        except ImportRefused as exc:
            problems = exc.problems
    if not problems:
        return RedirectResponse("/directory?done=imported", status_code=303)
    set_language(language_of(request))
    return render(
        request,
        "directory/import_refused.html",
        _context(title=gettext("The import was refused"), problems=problems),
        status_code=422,
    )


def import_json(session: SessionDep, text: str, actor: str, name: str) -> None:
    try:
        data = json.loads(text)
    except ValueError:
        raise ImportRefused([(0, "file", "the file is not JSON")]) from None
    fhir_io.import_bundle(session, data, actor=actor, what=name)


# -- a service -----------------------------------------------------------------------------------


def _service(session: SessionDep, service_id: int) -> DirectoryService:
    try:
        return get_service(session, service_id)
    except DirectoryError:
        raise NotFound("service", service_id) from None


def _organisation(session: SessionDep, organisation_id: int) -> Organisation:
    try:
        return get_organisation(session, organisation_id)
    except DirectoryError:
        raise NotFound("organisation", organisation_id) from None


def _service_values(form: FormData) -> dict[str, Any]:
    """The form's fields as the schema takes them; empty optional fields are cleared (None)."""
    values: dict[str, Any] = {}
    for name in SERVICE_TEXT:
        value = _text(form, name)
        values[name] = value or None
    for name in SERVICE_NUMBERS:
        value = _text(form, name)
        values[name] = value or None
    if values["response_days"] is None:
        values["response_days"] = 3
    for name in SERVICE_FLAGS:
        values[name] = form.get(name) == "on"
    values["category"] = _text(form, "category")
    values["capacity"] = _text(form, "capacity") or "yes"
    values["organisation_id"] = _text(form, "organisation_id") or None
    values["area"] = [a.strip() for a in _text(form, "area").replace("\n", ";").split(";") if a.strip()]
    values["needs"] = [n for n in NEED_DOMAINS if form.get(f"need_{n}") == "on"]
    documents = []
    for line in _text(form, "documents").splitlines():
        code, _, label = line.partition("=")
        if line.strip():
            documents.append({"code": code.strip(), "label": label.strip()})
    values["documents"] = documents
    return values


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _errors(exc: ValidationError) -> dict[str, str]:
    found: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else "form"
        found.setdefault(field, str(error["msg"]))
    return found


def _service_page(
    request: Request,
    session: SessionDep,
    principal: Principal,
    service: DirectoryService | None,
    *,
    typed: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    notice: str | None = None,
) -> Response:
    set_language(language_of(request))
    organisation = get_organisation(session, service.organisation_id) if service is not None else None
    shown = typed if typed is not None else (_service_form_values(service) if service is not None else None)
    return render(
        request,
        "directory/service.html",
        _context(
            title=service.name if service is not None else gettext("Add a service"),
            service=service,
            organisation=organisation,
            organisations=list_organisations(session),
            manager=principal.can(Permission.manage_directory),
            values=shown or {"active": True, "requires_consent": True, "response_days": 3, "capacity": "yes"},
            errors=errors or {},
            notice=notice,
        ),
        status_code=status_code,
    )


def _service_form_values(service: DirectoryService) -> dict[str, Any]:
    values = {f: getattr(service, f) for f in [*SERVICE_TEXT, *SERVICE_NUMBERS, *SERVICE_FLAGS]}
    values |= {
        "category": str(service.category),
        "capacity": str(service.capacity),
        "organisation_id": service.organisation_id,
        "area": "; ".join(service.area),
        "needs": service.needs,
        "documents": "\n".join(f"{d['code']}={d['label']}" for d in service.documents),
    }
    return values


def _typed(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    values["needs"] = [n for n in NEED_DOMAINS if form.get(f"need_{n}") == "on"]
    for name in SERVICE_FLAGS:
        values[name] = form.get(name) == "on"
    return values


@router.get("/directory/services/new", response_class=HTMLResponse)
def service_new(request: Request, principal: Manager, session: SessionDep) -> Response:
    return _service_page(request, session, principal, None)


@router.post("/directory/services/new", response_class=HTMLResponse)
async def service_add(request: Request, principal: Manager, session: SessionDep) -> Response:
    form = await request.form()
    try:
        body = ServiceIn.model_validate(_service_values(form))
        service = create_service(session, body, actor=principal.username)
    except ValidationError as exc:
        return _service_page(
            request, session, principal, None, typed=_typed(form), errors=_errors(exc), status_code=422
        )
    except InvalidDirectoryInput as exc:
        errors = {exc.field: exc.message}
        return _service_page(request, session, principal, None, typed=_typed(form), errors=errors, status_code=422)
    return RedirectResponse(f"/directory/services/{service.id}?done=saved", status_code=303)


@router.get("/directory/services/{service_id}", response_class=HTMLResponse)
def service_page(
    request: Request,
    service_id: Annotated[Id, Path()],
    principal: Reader,
    session: SessionDep,
    done: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    service = _service(session, service_id)
    set_language(language_of(request))
    notice = gettext(NOTICES[done]) if done in NOTICES else None
    return _service_page(request, session, principal, service, notice=notice)


@router.post("/directory/services/{service_id}", response_class=HTMLResponse)
async def service_change(
    request: Request, service_id: Annotated[Id, Path()], principal: Manager, session: SessionDep
) -> Response:
    service = _service(session, service_id)
    form = await request.form()
    values = _service_values(form)
    values.pop("code")
    organisation_id = values.pop("organisation_id")
    try:
        patch = ServicePatch.model_validate(values)
        if organisation_id is not None and str(organisation_id) != str(service.organisation_id):
            raise InvalidDirectoryInput("organisation_id", gettext("The organisation of a service cannot change."))
        update_service(session, service, patch, actor=principal.username)
    except ValidationError as exc:
        errors = _errors(exc)
        return _service_page(request, session, principal, service, typed=_typed(form), errors=errors, status_code=422)
    except InvalidDirectoryInput as exc:
        errors = {exc.field: exc.message}
        return _service_page(request, session, principal, service, typed=_typed(form), errors=errors, status_code=422)
    return RedirectResponse(f"/directory/services/{service.id}?done=saved", status_code=303)


# -- an organisation -----------------------------------------------------------------------------


def _organisation_page(
    request: Request,
    session: SessionDep,
    principal: Principal,
    organisation: Organisation | None,
    *,
    typed: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    notice: str | None = None,
) -> Response:
    set_language(language_of(request))
    values = typed
    if values is None and organisation is not None:
        values = {f: getattr(organisation, f) for f in [*ORGANISATION_TEXT, "kind", "active"]}
    services = list_services(session, organisation_id=organisation.id, active_only=False) if organisation else []
    return render(
        request,
        "directory/organisation.html",
        _context(
            title=organisation.name if organisation is not None else gettext("Add an organisation"),
            organisation=organisation,
            services=services,
            manager=principal.can(Permission.manage_directory),
            values=values or {"active": True, "kind": "city"},
            errors=errors or {},
            notice=notice,
        ),
        status_code=status_code,
    )


def _organisation_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {name: _text(form, name) or None for name in ORGANISATION_TEXT}
    values["kind"] = _text(form, "kind") or "city"
    values["active"] = form.get("active") == "on"
    return values


def _organisation_typed(form: FormData) -> dict[str, Any]:
    return {**{k: v for k, v in form.items() if isinstance(v, str)}, "active": form.get("active") == "on"}


@router.get("/directory/organisations/new", response_class=HTMLResponse)
def organisation_new(request: Request, principal: Manager, session: SessionDep) -> Response:
    return _organisation_page(request, session, principal, None)


@router.post("/directory/organisations/new", response_class=HTMLResponse)
async def organisation_add(request: Request, principal: Manager, session: SessionDep) -> Response:
    form = await request.form()
    try:
        organisation = create_organisation(
            session, OrganisationIn.model_validate(_organisation_values(form)), actor=principal.username
        )
    except ValidationError as exc:
        typed, errors = _organisation_typed(form), _errors(exc)
        return _organisation_page(request, session, principal, None, typed=typed, errors=errors, status_code=422)
    except InvalidDirectoryInput as exc:
        typed, errors = _organisation_typed(form), {exc.field: exc.message}
        return _organisation_page(request, session, principal, None, typed=typed, errors=errors, status_code=422)
    return RedirectResponse(f"/directory/organisations/{organisation.id}?done=saved", status_code=303)


@router.get("/directory/organisations/{organisation_id}", response_class=HTMLResponse)
def organisation_page(
    request: Request,
    organisation_id: Annotated[Id, Path()],
    principal: Reader,
    session: SessionDep,
    done: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    organisation = _organisation(session, organisation_id)
    set_language(language_of(request))
    notice = gettext(NOTICES[done]) if done in NOTICES else None
    return _organisation_page(request, session, principal, organisation, notice=notice)


@router.post("/directory/organisations/{organisation_id}", response_class=HTMLResponse)
async def organisation_change(
    request: Request, organisation_id: Annotated[Id, Path()], principal: Manager, session: SessionDep
) -> Response:
    organisation = _organisation(session, organisation_id)
    form = await request.form()
    values = _organisation_values(form)
    values.pop("code")
    try:
        update_organisation(session, organisation, OrganisationPatch.model_validate(values), actor=principal.username)
    except ValidationError as exc:
        typed, errors = _organisation_typed(form), _errors(exc)
        return _organisation_page(
            request, session, principal, organisation, typed=typed, errors=errors, status_code=422
        )
    except InvalidDirectoryInput as exc:
        typed, errors = _organisation_typed(form), {exc.field: exc.message}
        return _organisation_page(
            request, session, principal, organisation, typed=typed, errors=errors, status_code=422
        )
    return RedirectResponse(f"/directory/organisations/{organisation.id}?done=saved", status_code=303)


# -- suggestions on the case page ----------------------------------------------------------------


@router.get(
    "/cases/{case_id}/suggestions",
    response_class=HTMLResponse,
    dependencies=[Depends(require(Permission.read_directory))],
)
def case_suggestions(request: Request, case: CurrentCase, principal: CaseReader, session: SessionDep) -> Response:
    """The "Suggested services" part: loaded into the case page by htmx, or a page of its own."""
    found = suggestions_for_case(session, case)
    log_view(session, principal, "page.case_suggestions", [(case.source_id, case.patient_fhir_id)])
    set_language(language_of(request))
    fragment = request.headers.get("hx-request") == "true"
    return render(
        request,
        "case/suggestions_part.html" if fragment else "directory/suggestions_page.html",
        _context(
            title=gettext("Suggested services"), case=case, suggestions=found, can_refer=principal.can(Permission.refer)
        ),
    )
