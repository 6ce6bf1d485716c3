"""The service directory: organisations and services (read: read_directory; change: manage_directory),
its CSV and FHIR Bundle import and export, and the services suggested for a case.

The directory is the city's, not a hospital's: everyone who may read it sees all of it. Suggestions
are about a case, so they are scoped like every case route.
"""

from __future__ import annotations

import io
import json
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from discharge_bridge.api.webhooks import read_limited
from discharge_bridge.cases.errors import InvalidInput, NotFound
from discharge_bridge.cases.referrals.suggestions import suggestions_for_case
from discharge_bridge.deps import Actor, CurrentCase, CurrentPrincipal, SessionDep, log_view, require, require_by_method
from discharge_bridge.directory import csv_io, fhir_io
from discharge_bridge.directory.errors import (
    DirectoryError,
    ImportRefused,
    InvalidDirectoryInput,
    OrganisationNotFound,
    ServiceNotFound,
)
from discharge_bridge.directory.imports import UPLOAD_MAX, ImportResult
from discharge_bridge.directory.matching import Suggestion, explain
from discharge_bridge.directory.models import DirectoryService, Organisation, ServiceCategory
from discharge_bridge.directory.schemas import (
    DocumentOut,
    OrganisationIn,
    OrganisationOut,
    OrganisationPatch,
    ServiceIn,
    ServiceOut,
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
    remove_service,
    update_organisation,
    update_service,
)
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id, Line

router = APIRouter(
    prefix="/api/v1",
    tags=["directory"],
    dependencies=[Depends(require_by_method(Permission.read_directory, Permission.manage_directory))],
)
suggestions_router = APIRouter(
    prefix="/api/v1",
    tags=["directory"],
    dependencies=[Depends(require(Permission.read_cases)), Depends(require(Permission.read_directory))],
)
FHIR_JSON = "application/fhir+json"


def refuse(exc: DirectoryError) -> NoReturn:
    """A directory refusal in the API's shapes: 404, or a 422 naming the field (or the file's line)."""
    if isinstance(exc, OrganisationNotFound | ServiceNotFound):
        raise NotFound(*exc.message.removesuffix(" not found").split(" ", 1)) from exc
    if isinstance(exc, InvalidDirectoryInput):
        raise InvalidInput(("body", exc.field), exc.message) from exc
    if isinstance(exc, ImportRefused):
        raise ImportProblems(exc) from exc
    raise InvalidInput(("body",), exc.message) from exc


class ImportProblems(InvalidInput):
    """422 with every problem of a refused import: ``loc`` is ``["body", line, column]``."""

    def __init__(self, exc: ImportRefused) -> None:
        super().__init__(("body",), exc.message)
        self.problems = exc.problems

    def body(self) -> dict[str, Any]:
        return {
            "detail": [
                {"type": "value_error", "loc": ["body", line, column], "msg": message}
                for line, column, message in self.problems
            ]
        }


def organisation_or_404(organisation_id: Annotated[Id, Path()], session: SessionDep) -> Organisation:
    try:
        return get_organisation(session, organisation_id)
    except OrganisationNotFound as exc:
        refuse(exc)


def service_or_404(service_id: Annotated[Id, Path()], session: SessionDep) -> DirectoryService:
    try:
        return get_service(session, service_id)
    except ServiceNotFound as exc:
        refuse(exc)


CurrentOrganisation = Annotated[Organisation, Depends(organisation_or_404)]
CurrentService = Annotated[DirectoryService, Depends(service_or_404)]


def organisation_out(organisation: Organisation) -> OrganisationOut:
    assert organisation.id is not None
    return OrganisationOut(
        **{f: getattr(organisation, f) for f in OrganisationIn.model_fields},
        id=organisation.id,
        uses_portal=not organisation.fhir_base_url,
        updated_at=organisation.updated_at,
    )


def service_out(service: DirectoryService, organisation: Organisation) -> ServiceOut:
    return ServiceOut.model_validate(
        {
            **{f: getattr(service, f) for f in ServiceOut.model_fields if hasattr(service, f)},
            "organisation_code": organisation.code,
            "organisation_name": organisation.name,
        }
    )


# -- organisations -------------------------------------------------------------------------------


@router.get("/directory/organisations", response_model=list[OrganisationOut])
def organisations_index(
    session: SessionDep, active_only: Annotated[bool, Query(description="Leave out inactive ones.")] = False
) -> list[OrganisationOut]:
    """Every organisation of the directory, by name."""
    return [organisation_out(o) for o in list_organisations(session, active_only=active_only)]


@router.post("/directory/organisations", response_model=OrganisationOut, status_code=201)
def organisations_add(body: OrganisationIn, session: SessionDep, actor: Actor) -> OrganisationOut:
    """Add an organisation (audited). Its `code` must be new."""
    try:
        return organisation_out(create_organisation(session, body, actor=actor))
    except DirectoryError as exc:
        refuse(exc)


@router.get("/directory/organisations/{organisation_id}", response_model=OrganisationOut)
def organisation_get(organisation: CurrentOrganisation) -> OrganisationOut:
    return organisation_out(organisation)


@router.patch("/directory/organisations/{organisation_id}", response_model=OrganisationOut)
def organisation_patch(
    organisation: CurrentOrganisation, body: OrganisationPatch, session: SessionDep, actor: Actor
) -> OrganisationOut:
    """Change the fields sent (audited); `active: false` hides its services from suggestions and the portal."""
    try:
        return organisation_out(update_organisation(session, organisation, body, actor=actor))
    except DirectoryError as exc:
        refuse(exc)


# -- services ------------------------------------------------------------------------------------


@router.get("/directory/services", response_model=list[ServiceOut])
def services_index(
    session: SessionDep,
    category: ServiceCategory | None = None,
    q: Annotated[Line | None, Query(description="Words of the name, description, area, organisation.")] = None,
    active_only: Annotated[bool, Query(description="Only active services of active organisations.")] = True,
) -> list[ServiceOut]:
    services = list_services(session, category=category, active_only=active_only, search=q)
    organisations = organisations_by_id(session, (s.organisation_id for s in services))
    return [service_out(s, organisations[s.organisation_id]) for s in services]


@router.post("/directory/services", response_model=ServiceOut, status_code=201)
def services_add(body: ServiceIn, session: SessionDep, actor: Actor) -> ServiceOut:
    """Add a service of an organisation (audited). Its `code` must be new."""
    try:
        service = create_service(session, body, actor=actor)
        return service_out(service, get_organisation(session, service.organisation_id))
    except DirectoryError as exc:
        refuse(exc)


@router.get("/directory/services/{service_id}", response_model=ServiceOut)
def service_get(service: CurrentService, session: SessionDep) -> ServiceOut:
    return service_out(service, get_organisation(session, service.organisation_id))


@router.patch("/directory/services/{service_id}", response_model=ServiceOut)
def service_patch(service: CurrentService, body: ServicePatch, session: SessionDep, actor: Actor) -> ServiceOut:
    """Change the fields sent (audited); a field sent as null is cleared unless it must hold a value (422)."""
    try:
        update_service(session, service, body, actor=actor)
    except DirectoryError as exc:
        refuse(exc)
    return service_out(service, get_organisation(session, service.organisation_id))


class Removed(BaseModel):
    deleted: bool = Field(description="False: a referral names it, so it was made inactive instead.")


@router.delete("/directory/services/{service_id}", response_model=Removed)
def service_remove(service: CurrentService, session: SessionDep, actor: Actor) -> Removed:
    """Delete a service no referral names; one that is referred to is made inactive instead."""
    return Removed(deleted=remove_service(session, service, actor=actor))


# -- import and export ---------------------------------------------------------------------------


class ImportOut(BaseModel):
    organisations_created: int
    organisations_updated: int
    services_created: int
    services_updated: int
    unchanged: int


def _result(result: ImportResult) -> ImportOut:
    return ImportOut(**result.__dict__)


async def _upload(request: Request) -> bytes:
    """The file, counted as it arrives: a body past UPLOAD_MAX is a 413 before it is all read."""
    return await read_limited(request, UPLOAD_MAX)


@router.get(
    "/directory.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per service with its organisation."}},
)
def directory_csv(session: SessionDep) -> Response:
    """The whole directory as CSV (lists `;`-separated; documents as `code=label`)."""
    buffer = io.StringIO()
    csv_io.write_csv(session, buffer)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="directory.csv"'},
    )


_FILE = {"type": "string", "format": "binary", "maxLength": UPLOAD_MAX, "pattern": "^[^\\x00]*$"}
CSV_BODY = {"requestBody": {"required": True, "content": {"text/csv": {"schema": _FILE}}}}


@router.post("/directory.csv", response_model=ImportOut, openapi_extra=CSV_BODY)
async def directory_csv_import(request: Request, session: SessionDep, actor: Actor) -> ImportOut:
    """Upsert by `code`, all or nothing: a refused file is a 422 listing every problem as
    `loc: ["body", line, column]` (the header is line 1)."""
    raw = await _upload(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(("body",), "the file is not UTF-8 text") from None
    try:
        return _result(csv_io.import_csv(session, text, actor=actor))
    except DirectoryError as exc:
        refuse(exc)


@router.get(
    "/directory/bundle",
    response_class=Response,
    responses={200: {"content": {FHIR_JSON: {}}, "description": "A FHIR R4 Bundle (collection)."}},
)
def directory_bundle(session: SessionDep) -> Response:
    """The directory as a FHIR R4 collection Bundle: Organization, Endpoint, HealthcareService, Location."""
    return Response(json.dumps(fhir_io.bundle(session), ensure_ascii=False), media_type=FHIR_JSON)


BUNDLE_BODY = {
    "requestBody": {
        "required": True,
        "content": {FHIR_JSON: {"schema": {"type": "object"}}, "application/json": {"schema": {"type": "object"}}},
    }
}


@router.post("/directory/bundle", response_model=ImportOut, openapi_extra=BUNDLE_BODY)
async def directory_bundle_import(request: Request, session: SessionDep, actor: Actor) -> ImportOut:
    """Upsert a Bundle of the export's shape by code, all or nothing (validated with the R4B models); a
    refused bundle is a 422 listing every problem as `loc: ["body", entry index, field]`."""
    raw = await _upload(request)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput(("body",), "the body is not JSON") from None
    try:
        return _result(fhir_io.import_bundle(session, data, actor=actor))
    except DirectoryError as exc:
        refuse(exc)


# -- suggestions for a case ----------------------------------------------------------------------


class SuggestionOut(BaseModel):
    service_id: int
    service_code: str
    service_name: str
    category: ServiceCategory
    organisation_id: int
    organisation_name: str
    score: int
    fits: list[str] = Field(description='Why it fits, as codes with values: "need:social", "age:82>=65".')
    fits_text: list[str] = Field(description="The same in English words.")
    misses: list[str] = Field(description='What does not fit or is unknown: "district_unknown", "waitlist:30".')
    misses_text: list[str]
    documents: list[DocumentOut]
    requires_consent: bool
    uses_portal: bool


def suggestion_out(s: Suggestion) -> SuggestionOut:
    return SuggestionOut(
        service_id=s.service.id,
        service_code=s.service.code,
        service_name=s.service.name,
        category=s.service.category,
        organisation_id=s.organisation.id,
        organisation_name=s.organisation.name,
        score=s.score,
        fits=s.fits,
        fits_text=[explain(r) for r in s.fits],
        misses=s.misses,
        misses_text=[explain(r) for r in s.misses],
        documents=[DocumentOut(**d) for d in s.documents],
        requires_consent=s.service.requires_consent,
        uses_portal=not s.organisation.fhir_base_url,
    )


@suggestions_router.get("/cases/{case_id}/suggestions", response_model=list[SuggestionOut])
def case_suggestions(case: CurrentCase, session: SessionDep, principal: CurrentPrincipal) -> list[SuggestionOut]:
    """Active services that fit the case's assessed needs, flags, age and district, best first, each with
    why it fits, what is unknown or does not fit, and the documents it needs. The coordinator picks."""
    found = suggestions_for_case(session, case)
    # The reasons carry the person's age and district: a view of the person, in the access log.
    log_view(session, principal, "api.case_suggestions", [(case.source_id, case.patient_fhir_id)])
    return [suggestion_out(s) for s in found]
