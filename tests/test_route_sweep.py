"""The route sweep: every registered route answers 401 / 403 / 404 where it must, for every role; and
every write that names a user (a case's coordinator, a task's owner) takes only someone who may be
given it, whoever asks and through whichever door (API or page).

The routes come from the app itself through ``fastapi.routing.iter_route_contexts`` (since FastAPI
0.137 ``app.routes`` holds one opaque entry per included router, so a plain loop over it would
sweep nothing and pass). A route that is neither allow-listed below nor carries a permission
dependency (``deps.require`` / ``deps.require_by_method``, found by walking its dependency tree)
fails here by path, and a path parameter the sweep cannot fill with another hospital's object fails
by name: a new route cannot escape. So does a write route with a field that reads like a user
(``USER_LIKE``, in its declared body or, for a page, in the form fields its code reads) that is not
listed in USER_FIELDS (swept with every kind of user) or FREE_TEXT (with the reason). SQLite only (fast).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import Depends, FastAPI, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.routing import Mount, Route

from discharge_bridge.app import create_app
from discharge_bridge.cases.barriers import add_barrier
from discharge_bridge.cases.consent.service import record_consent
from discharge_bridge.cases.contacts.service import add_contact
from discharge_bridge.cases.delivered.service import record_service
from discharge_bridge.cases.handoffs.models import DestinationType
from discharge_bridge.cases.handoffs.service import create_handoff
from discharge_bridge.cases.models import BarrierCode, Case
from discharge_bridge.cases.referrals.service import create_referral
from discharge_bridge.cases.screening.models import ScreeningTool
from discharge_bridge.cases.screening.service import start_screening
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.cases.tasks.repository import list_tasks
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SAFE_METHODS, SessionDep, current_principal, require
from discharge_bridge.directory.models import ServiceCategory
from discharge_bridge.ingest.models import DeadLetter
from discharge_bridge.ingest.store import record_dead_letter
from discharge_bridge.users.roles import ROLE_PERMISSIONS, Permission, Role
from discharge_bridge.users.service import disable_user, issue_token
from tests.cases.referral_support import make_service
from tests.support.factories import flagged_case, make_source, make_user

# SQLite only: fast, and the scoping SQL itself runs on both databases in the domain tests.
pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)

# Open to anyone: health checks, the sign-in form and the favicon. Static files are a Mount.
OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/login"), ("POST", "/login"), ("GET", "/favicon.ico")}
# CDS Hooks discovery (two static service descriptions, nothing of a patient) and the CORS preflights a
# browser sends without credentials. The calls themselves take the EHR's JWT: see CDS_JWT below.
OPEN |= {
    ("GET", "/cds-services"),
    ("OPTIONS", "/cds-services"),
    ("OPTIONS", "/cds-services/{hook_service}"),
    ("OPTIONS", "/cds-services/{hook_service}/feedback"),
}
# SMART App Launch (ui/launch.py): the EHR (or a bookmark) opens /launch before anyone is signed in, and
# the EHR's authorization server sends the browser back to /launch/callback; the code, the state taken
# once and the id_token decide who signs in there (ehr/launch/service.py).
OPEN |= {("GET", "/launch"), ("GET", "/launch/callback")}
# Routes the EHR calls with a JWT it signs (api/cds.py, ``cds_caller``): no permission of ours applies,
# so the sweep's rule for them is that anyone without a valid JWT gets 401, anonymous or holding any
# of our API tokens (every role's), whichever hospital's ids the path names.
CDS_JWT = {("POST", "/cds-services/{hook_service}"), ("POST", "/cds-services/{hook_service}/feedback")}
OPEN_MOUNTS = {"/static"}
# Any signed-in principal, whatever the role.
SIGNED_IN = {
    ("GET", "/"),
    ("POST", "/logout"),
    ("POST", "/account/language"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
}
# Answer 401 to an anonymous caller; other paths are pages, which may redirect to the sign-in page.
STRICT_401 = ("/api/", "/metrics", "/openapi.json", "/cds-services")
ROLES = (Role.coordinator, Role.bed_manager, Role.it_admin, Role.admin, Role.psychologist, Role.receiver)
# Admins see every hospital. A receiver sees no hospital, only the referrals sent to its organisation
# (hospital A's): another hospital's referral, to another organisation, must be a 404 to it.
SCOPED_ROLES = (Role.coordinator, Role.bed_manager, Role.it_admin, Role.psychologist, Role.receiver)


@dataclass
class Hospital:
    source_name: str
    encounter: str
    patient: str
    case_id: int
    task_id: int
    handoff_id: int
    barrier_id: int
    dead_letter_id: int
    contact_id: int  # a contact added by hand to the case
    service_id: int = 0  # a directory service (shared by the hospitals) the case is referred to
    organisation_id: int = 0  # the directory organisation giving that service
    referral_id: int = 0
    consent_id: int = 0
    delivered_id: int = 0  # a service delivered recorded on the case
    screening_id: int = 0  # a BRASS screening of the case (cases/screening)


def _fill_source(h: Hospital) -> str:
    return h.source_name


# Path parameter name -> the object of a hospital that fills it.
PATH_PARAMS: dict[str, Callable[[Hospital], Any]] = {
    "case_id": lambda h: h.case_id,
    "task_id": lambda h: h.task_id,
    "handoff_id": lambda h: h.handoff_id,
    "barrier_id": lambda h: h.barrier_id,
    "contact_id": lambda h: h.contact_id,
    "referral_id": lambda h: h.referral_id,
    "delivered_id": lambda h: h.delivered_id,
    "screening_id": lambda h: h.screening_id,
    "consent_id": lambda h: h.consent_id,
    "service_id": lambda h: h.service_id,
    "organisation_id": lambda h: h.organisation_id,
    "code": lambda h: "passport",  # a document of the referral's checklist
    "name": _fill_source,
    "source": _fill_source,
    "source_name": _fill_source,
    "dead_letter_id": lambda h: h.dead_letter_id,
    "deadletter_id": lambda h: h.dead_letter_id,
    "letter_id": lambda h: h.dead_letter_id,
    "hook_service": lambda h: "discharge-bridge-patient-view",  # a CDS Hooks service (not a hospital's)
}

# Objects of the city's service directory: not a hospital's, so every reader of the directory sees them
# (a route named only by these is not tried with another hospital's ids).
SHARED_PARAMS = frozenset({"service_id", "organisation_id"})

# Bodies the generator below cannot guess (it fills required fields with placeholders).
BODIES: dict[tuple[str, str], Callable[[Hospital], dict[str, Any]]] = {
    ("POST", "/api/v1/cases"): lambda h: {"source": h.source_name, "encounter": h.encounter},
    ("POST", "/account/language"): lambda h: {"language": "en"},
    ("POST", "/api/v1/cases/{case_id}/contact-log"): lambda h: {
        "contact": f"added/{h.contact_id}",
        "kind": "call",
        "outcome": "no_answer",
    },
    ("POST", "/api/v1/cases/{case_id}/referrals"): lambda h: {"service_id": h.service_id},
    ("POST", "/api/v1/cases/{case_id}/consents"): lambda h: {"method": "signed_form", "categories": ["charity"]},
    ("POST", "/api/v1/cases/{case_id}/services"): lambda h: {"kind": "consultation"},
}


# Writes that name a user, and the field that does: each is swept with every kind of user below.
USER_FIELDS: dict[tuple[str, str], str] = {
    ("PATCH", "/api/v1/cases/{case_id}"): "coordinator",
    ("POST", "/api/v1/cases/{case_id}/tasks"): "owner",
    ("PATCH", "/api/v1/tasks/{task_id}"): "owner",
    ("POST", "/cases/{case_id}/assign"): "coordinator",
    ("POST", "/cases/{case_id}/tasks"): "owner",
    ("POST", "/cases/{case_id}/tasks/{task_id}"): "owner",
}
# Fields named like a user that hold free text. A barrier's owner is whoever must lift it: a social
# service, the family, a ward ("social services" in the pages' own tests), not an account here.
FREE_TEXT: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/cases/{case_id}/barriers"): "owner",
    ("PATCH", "/api/v1/barriers/{barrier_id}"): "owner",
    ("POST", "/cases/{case_id}/barriers"): "owner",
}
# Field names that read like a user. Sign-in (``/login``: username) is open and judged elsewhere.
USER_LIKE = frozenset({"coordinator", "owner", "assignee", "assigned_to", "user", "username", "responsible"})


@dataclass
class Endpoint:
    method: str
    path: str
    dependant: Dependant | None  # None for plain Starlette routes
    body_params: list[Any]
    endpoint: Callable[..., Any] | None = None  # the route's function (a page reads its form in it)

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)(?::\w+)?}", self.path)

    def calls(self) -> Iterator[Any]:
        yield from _calls(self.dependant) if self.dependant is not None else ()

    def needs(self) -> frozenset[Permission]:
        """The permissions its dependencies demand for this method."""
        found: set[Permission] = set()
        for call in self.calls():
            if isinstance(getattr(call, "permission", None), Permission):
                found.add(call.permission)
            if isinstance(getattr(call, "read", None), Permission):
                found.add(call.read if self.method in SAFE_METHODS else call.write)
        return frozenset(found)

    def signed_in(self) -> bool:
        return any(call is current_principal for call in self.calls())

    def webhook(self) -> bool:
        """Authenticated by a per-source secret header instead of sign-in (the dependency says so)."""
        return any(getattr(call, "webhook_secret", False) for call in self.calls())

    def cds_jwt(self) -> bool:
        """Authenticated by the EHR's signed JWT (CDS Hooks) instead of sign-in (the dependency says so)."""
        return any(getattr(call, "cds_jwt", False) for call in self.calls())

    def user_like_fields(self) -> set[str]:
        """Fields of its declared body, or form fields its code names as string literals, that read like a user."""
        names: set[str] = set()
        for param in self.body_params:
            annotation = param.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                names |= set(annotation.model_fields)
            else:
                names.add(param.alias)
        if not self.body_params and self.endpoint is not None:  # a page: the fields it reads from its form
            names |= set(re.findall(r"[\"'](\w+)[\"']", inspect.getsource(self.endpoint)))
        return names & USER_LIKE


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def enumerate_routes(app: FastAPI) -> tuple[list[Endpoint], set[str], list[str]]:
    """(method, path) endpoints, mount paths, and problems (route kinds the sweep cannot judge)."""
    endpoints: list[Endpoint] = []
    mounts: set[str] = set()
    problems: list[str] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            mounts.add(context.path)
            continue
        if isinstance(route, APIRoute):
            dependant = context.dependant
            body = list(dependant.body_params)
        elif isinstance(route, Route):
            dependant, body = None, []
        else:
            problems.append(
                f"{type(route).__name__} {getattr(context, 'path', '?')}: a route kind the sweep cannot judge"
            )
            continue
        endpoint = getattr(route, "endpoint", None)
        for method in sorted(context.methods or ()):
            if method != "HEAD":  # answered as GET
                endpoints.append(Endpoint(method, context.path_format, dependant, body, endpoint))
    return endpoints, mounts, problems


def classify(endpoints: list[Endpoint], mounts: set[str]) -> list[str]:
    """Routes that escape the sweep: unguarded, unknown parameters, stale allow-list entries."""
    problems = [f"mount {m}: not in OPEN_MOUNTS" for m in sorted(mounts - OPEN_MOUNTS)]
    keys = {e.key for e in endpoints}
    problems += [f"{m} {p}: allow-listed but not registered" for m, p in sorted((OPEN | SIGNED_IN | CDS_JWT) - keys)]
    for e in endpoints:
        if e.key in OPEN or e.webhook():
            continue
        if e.cds_jwt() != (e.key in CDS_JWT):
            problems.append(f"{e.method} {e.path}: a CDS Hooks JWT route must be both in CDS_JWT and guarded by it")
            continue
        if e.cds_jwt():
            problems += [
                f"{e.method} {e.path}: unknown path parameter {{{p}}}" for p in e.path_params if p not in PATH_PARAMS
            ]
            continue
        if e.key in SIGNED_IN:
            if not e.signed_in():
                problems.append(f"{e.method} {e.path}: allow-listed as signed-in but does not depend on sign-in")
        elif not e.needs():
            problems.append(f"{e.method} {e.path}: no permission dependency and not allow-listed")
        problems += [
            f"{e.method} {e.path}: unknown path parameter {{{p}}}" for p in e.path_params if p not in PATH_PARAMS
        ]
    return problems


def classify_user_fields(endpoints: list[Endpoint]) -> list[str]:
    """Writes with a field that reads like a user but is in neither USER_FIELDS nor FREE_TEXT; stale entries."""
    problems = []
    listed = {**USER_FIELDS, **FREE_TEXT}
    for e in endpoints:
        if e.method in SAFE_METHODS or e.key in OPEN or e.webhook():
            continue
        for name in sorted(e.user_like_fields() - ({listed[e.key]} if e.key in listed else set())):
            problems.append(
                f"{e.method} {e.path}: field {name!r} reads like a user: list it in USER_FIELDS or FREE_TEXT"
            )
    keys = {e.key: e for e in endpoints}
    for key, name in sorted(listed.items()):
        if key not in keys or name not in keys[key].user_like_fields():
            problems.append(f"{key[0]} {key[1]}: listed with {name!r} but no such route or field")
    return problems


# --- request bodies that validate -----------------------------------------------------------


def _example(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return _example(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return _example(options[0], defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {
            name: _example(sub, defs)
            for name, sub in schema.get("properties", {}).items()
            if name in schema.get("required", [])
        }
    if kind == "array":
        return [_example(schema["items"], defs)] if schema.get("minItems") else []
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if schema.get("format") == "date-time":
        return "2026-11-20T10:00:00+03:00"
    if schema.get("format") == "date":
        return "2026-11-20"
    return "sweep"


def _value(field: Any) -> Any:
    schema = TypeAdapter(field.field_info.annotation).json_schema()
    return _example(schema, schema.get("$defs", {}))


def request_kwargs(e: Endpoint, h: Hospital) -> dict[str, Any]:
    """A body that validates, as JSON or as a form, so a 422 never stands in for an answer."""
    if e.key in BODIES:
        body = BODIES[e.key](h)
        is_form = any(isinstance(f.field_info, params.Form) for f in e.body_params)
        return {"data": body} if is_form else {"json": body}
    if not e.body_params:
        return {}
    if any(isinstance(f.field_info, params.Form) for f in e.body_params):
        return {"data": {f.alias: _value(f) for f in e.body_params if f.field_info.is_required()}}
    if len(e.body_params) == 1 and not getattr(e.body_params[0].field_info, "embed", False):
        return {"json": _value(e.body_params[0])}
    return {"json": {f.alias: _value(f) for f in e.body_params}}


def url_for(e: Endpoint, h: Hospital) -> str:
    """The path with hospital ``h``'s objects; a webhook's other segments (resource type, id) get placeholders."""
    url = e.path
    for name in e.path_params:
        fill = PATH_PARAMS[name](h) if name in PATH_PARAMS or not e.webhook() else "Encounter"
        url = url.replace(f"{{{name}}}", str(fill))
    return url


# --- the data: two hospitals with one of everything -----------------------------------------


def _hospital(session: Session, settings: Settings, name: str, tag: str) -> Hospital:
    source = make_source(session, name)
    assert source.id is not None
    case = flagged_case(session, source.id, f"enc-{tag}", f"pat-{tag}")
    assert case.id is not None
    task = list_tasks(session, case.id)[0]
    handoff = create_handoff(
        session, case, actor="sweep", destination_type=DestinationType.relatives, mappings_dir=settings.mappings_dir
    )
    barrier = add_barrier(session, case, actor="sweep", code=BarrierCode.housing)
    contact = add_contact(session, case, actor="sweep", name="Sweep", relationship="SON", phones=[])
    record_dead_letter(session, source.id, {"resourceType": "Encounter", "id": f"bad-{tag}"}, "no status")
    letter = session.exec(select(DeadLetter).where(DeadLetter.source_id == source.id)).one()
    assert task.id and handoff.id and barrier.id and letter.id and contact.id
    hospital = Hospital(
        name, f"enc-{tag}", f"pat-{tag}", case.id, task.id, handoff.id, barrier.id, letter.id, contact.id
    )
    service = make_service(session, f"sweep-{tag}", ServiceCategory.charity)
    consent = record_consent(session, case, {"method": "signed_form", "categories": ["charity"]}, actor="sweep")
    referral = create_referral(session, case, service_id=service.id or 0, actor="sweep")
    assert service.id and consent.id and referral.id
    hospital.service_id, hospital.consent_id, hospital.referral_id = service.id, consent.id, referral.id
    hospital.organisation_id = service.organisation_id
    # A referral to a psychologist, so the hospital's psychologist may open the case (deps.visible_case).
    psychologist = make_service(session, f"psy-{tag}", ServiceCategory.psychologist)
    record_consent(session, case, {"method": "signed_form", "categories": ["psychologist"]}, actor="sweep")
    create_referral(session, case, service_id=psychologist.id or 0, actor="sweep")
    # Recorded by the hospital's psychologist: a psychologist strikes out only their own rows.
    delivered = record_service(
        session, case, kind="consultation", delivered_at=None, actor="sweep-psychologist", role=Role.psychologist
    )
    assert delivered.id is not None
    hospital.delivered_id = delivered.id
    screening = start_screening(session, case, ScreeningTool.brass, actor="sweep", mappings_dir=settings.mappings_dir)
    assert screening.id is not None
    hospital.screening_id = screening.id
    return hospital


def token_client(
    app: FastAPI,
    engine: Engine,
    username: str,
    role: Role,
    sources: tuple[str, ...],
    *,
    organisation_id: int | None = None,
) -> TestClient:
    """A user's API token on ``app``; a 5xx comes back as a status to report, not as an exception.
    A receiver works for ``organisation_id`` (the organisation hospital A's referral went to)."""
    with session_scope(engine) as session:
        bound = organisation_id if role == Role.receiver else None
        make_user(session, username, role.value, sources, organisation_id=bound)
        token = issue_token(session, username, "sweep")
    return TestClient(app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False)


def _call(client: TestClient, e: Endpoint, h: Hospital) -> Any:
    return client.request(e.method, url_for(e, h), follow_redirects=False, **request_kwargs(e, h))


def anonymous_failures(app: FastAPI, endpoints: list[Endpoint], mine: Hospital) -> list[str]:
    """401; pages (outside the API) may instead redirect to ``/login?next=...``."""
    client, failures = TestClient(app, raise_server_exceptions=False), []
    for e in endpoints:
        response = _call(client, e, mine)
        status, location = response.status_code, response.headers.get("location", "")
        strict = e.path.startswith(STRICT_401)
        if status == 401 or (not strict and status == 303 and location.startswith("/login?next=")):
            continue
        failures.append(f"anonymous {e.method} {e.path} -> {status} (wants {'401' if strict else '401 or 303'})")
    return failures


def jwt_failures(clients: dict[Role, TestClient], endpoints: list[Endpoint], mine: Hospital) -> list[str]:
    """A CDS Hooks route refuses each role's API token of ours with 401: only the EHR's JWT opens it."""
    failures = []
    for e in (e for e in endpoints if e.cds_jwt()):
        for role, client in clients.items():
            status = _call(client, e, mine).status_code
            if status != 401:
                failures.append(f"{role}'s API token: {e.method} {e.path} -> {status} (wants 401: needs the EHR's JWT)")
    return failures


def foreign_failures(
    clients: dict[Role, TestClient], endpoints: list[Endpoint], mine: Hospital, foreign: Hospital
) -> tuple[list[str], int]:
    """A user of hospital A who holds the route's permissions: 404 for B's objects; lists without B's rows."""
    failures, checked = [], 0
    for e in endpoints:
        holder = next((r for r in SCOPED_ROLES if e.needs() <= ROLE_PERMISSIONS[r]), None)
        if holder is None:  # only admins may: they see every hospital
            continue
        who = f"{holder} of {mine.source_name}: {e.method} {e.path}"
        if e.path_params and set(e.path_params) <= SHARED_PARAMS:
            continue
        if e.path_params:
            checked += 1
            status = _call(clients[holder], e, foreign).status_code
            if status != 404:
                failures.append(f"{who} with {foreign.source_name}'s ids -> {status} (wants 404)")
        elif e.method in SAFE_METHODS:
            text = clients[holder].request(e.method, e.path, follow_redirects=False).text
            leaked = [m for m in (foreign.source_name, foreign.encounter, foreign.patient) if m in text]
            if leaked:
                failures.append(f"{who} shows {foreign.source_name}'s {leaked}")
    return failures, checked


def role_failures(clients: dict[Role, TestClient], endpoints: list[Endpoint], mine: Hospital) -> list[str]:
    """403 where the role lacks a permission; otherwise an answer about the request, not about access.

    With its own hospital's ids a permitted caller never gets 401, 403 or 404, nor a 5xx. A 422 is
    a failure of the sweep's body where the route declares one; pages that read their form
    themselves (no declared body) may answer 422 or, for ids typed into the form, 404.
    """
    failures = []
    for role, client in clients.items():
        for e in endpoints:
            response = _call(client, e, mine)
            status = response.status_code
            if not e.needs() <= ROLE_PERMISSIONS[role]:
                if status != 403:
                    failures.append(f"{role}: {e.method} {e.path} -> {status} (wants 403: needs {sorted(e.needs())})")
                continue
            declared = bool(e.body_params)
            if (
                status in (401, 403)
                or status >= 500
                or (status == 404 and (e.path_params or declared))
                or (status == 422 and declared)
            ):
                failures.append(f"{role}: {e.method} {e.path} on its own hospital -> {status}: {response.text[:200]}")
    return failures


def test_every_route_answers_401_403_404_where_it_must(settings: Settings, engine: Engine) -> None:
    with session_scope(engine) as session:
        mine = _hospital(session, settings, "hosp-a", "a7c1")
        foreign = _hospital(session, settings, "hosp-b", "b7c1")
    app = create_app(settings)
    endpoints, mounts, problems = enumerate_routes(app)
    problems += classify(endpoints, mounts)
    # Not vacuous: the enumeration sees the routers' routes, with their prefixes.
    keys = {e.key for e in endpoints}
    for known in [("GET", "/api/v1/cases/{case_id}"), ("PATCH", "/api/v1/tasks/{task_id}"), ("GET", "/metrics")]:
        assert known in keys, f"the sweep does not see {known}: {sorted(keys)}"
    assert len(endpoints) >= 30
    assert not problems, "routes that escape the sweep:\n" + "\n".join(problems)

    clients = {
        role: token_client(
            app, engine, f"sweep-{role.value}", role, (mine.source_name,), organisation_id=mine.organisation_id
        )
        for role in ROLES
    }
    swept = [e for e in endpoints if e.key not in OPEN]
    guarded = [e for e in swept if not e.webhook() and not e.cds_jwt()]
    assert {e.key for e in swept if e.cds_jwt()} == CDS_JWT
    failures = anonymous_failures(app, swept, mine) + jwt_failures(clients, swept, mine)
    found, checked = foreign_failures(clients, guarded, mine, foreign)
    failures += found + role_failures(clients, guarded, mine)
    assert not failures, "\n".join(failures)
    assert checked >= 15  # every route with an id of a scoped object was tried with hospital B's


# --- writes that name a user: role x hospital x target user --------------------------------------

# The people a write may name, with whether a case's coordinator / a task's owner may be them. Only
# an enabled coordinator of the case's hospital may take a case; a task, an enabled user of the
# hospital who may coordinate (its coordinators, and admins, who see every hospital).
TARGETS: dict[str, dict[str, bool]] = {
    "sweep-coordinator": {"coordinator": True, "owner": True},  # a coordinator of hosp-a
    "sweep-admin": {"coordinator": False, "owner": True},
    "sweep-coordinator-b": {"coordinator": False, "owner": False},  # another hospital's
    "sweep-bed_manager": {"coordinator": False, "owner": False},
    "sweep-it_admin": {"coordinator": False, "owner": False},
    "sweep-disabled": {"coordinator": False, "owner": False},  # a coordinator of hosp-a, disabled
    "sweep-nobody": {"coordinator": False, "owner": False},  # no such user
}


def _versions(engine: Engine, h: Hospital) -> tuple[int, int]:
    """The stored versions of hospital ``h``'s case and task (each accepted write moves them)."""
    with session_scope(engine) as session:
        case, task = session.get(Case, h.case_id), session.get(Task, h.task_id)
        assert case is not None and task is not None
        return case.version, task.version


def naming(e: Endpoint, h: Hospital, name: str, engine: Engine) -> dict[str, Any]:
    """A request of route ``e`` that is valid but for the user it names, ``name``, in its user field."""
    case_version, task_version = _versions(engine, h)
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("PATCH", "/api/v1/cases/{case_id}"): {"coordinator": name},
        ("POST", "/api/v1/cases/{case_id}/tasks"): {"description": "sweep", "domain": "social", "owner": name},
        ("PATCH", "/api/v1/tasks/{task_id}"): {"owner": name, "version": task_version},
        ("POST", "/cases/{case_id}/assign"): {"coordinator": name, "version": case_version},
        ("POST", "/cases/{case_id}/tasks"): {"description": "sweep", "domain": "social", "owner": name},
        ("POST", "/cases/{case_id}/tasks/{task_id}"): {"owner": name, "version": task_version, "status_reason": ""},
    }
    body = bodies[e.key]
    return {"json": body} if e.path.startswith("/api/") else {"data": body}


def _names_the_field(e: Endpoint, response: Any, field: str) -> bool:
    """A refusal about ``field``: the API's 422 locates it; the page marks its control invalid."""
    if e.path.startswith("/api/"):
        return [d["loc"][-1] for d in response.json()["detail"]] == [field]
    controls = re.findall(rf'<(?:input|select|textarea)[^>]*\sname="{field}"[^>]*>', response.text)
    return any('aria-invalid="true"' in control for control in controls)


def user_write_failures(
    clients: dict[Role, TestClient], endpoints: list[Endpoint], mine: Hospital, engine: Engine
) -> tuple[list[str], int]:
    """Each write of USER_FIELDS by each role, naming each target: accepted (2xx / the page's 303) only
    where TARGETS says so, else a 4xx naming the field; a role without the permission: 403 whoever it names."""
    failures, checked = [], 0
    for e in (e for e in endpoints if e.key in USER_FIELDS):
        field = USER_FIELDS[e.key]
        for role, client in clients.items():
            permitted = e.needs() <= ROLE_PERMISSIONS[role]
            for name, may in TARGETS.items():
                checked += 1
                response = client.request(
                    e.method, url_for(e, mine), follow_redirects=False, **naming(e, mine, name, engine)
                )
                status, who = response.status_code, f"{role} {e.method} {e.path} naming {name}"
                if not permitted:
                    if status != 403:
                        failures.append(f"{who} -> {status} (wants 403: the role may not write here)")
                elif may[field] and status not in (200, 201, 303):
                    failures.append(f"{who} -> {status} (wants it accepted): {response.text[:200]}")
                elif not may[field] and not (
                    400 <= status < 500 and status != 403 and _names_the_field(e, response, field)
                ):
                    failures.append(f"{who} -> {status} (wants a 4xx naming {field!r}): {response.text[:200]}")
    return failures, checked


def test_every_write_that_names_a_user_takes_only_someone_who_may_be_given_it(
    settings: Settings, engine: Engine
) -> None:
    with session_scope(engine) as session:
        mine = _hospital(session, settings, "hosp-a", "a7c1")
        _hospital(session, settings, "hosp-b", "b7c1")
        make_user(session, "sweep-coordinator-b", "coordinator", ("hosp-b",))
        make_user(session, "sweep-disabled", "coordinator", ("hosp-a",))
        disable_user(session, "sweep-disabled")
    app = create_app(settings)
    endpoints = enumerate_routes(app)[0]
    problems = classify_user_fields(endpoints)
    assert not problems, "writes naming a user that escape the sweep:\n" + "\n".join(problems)
    clients = {
        role: token_client(
            app, engine, f"sweep-{role.value}", role, (mine.source_name,), organisation_id=mine.organisation_id
        )
        for role in ROLES
    }
    failures, checked = user_write_failures(clients, endpoints, mine, engine)
    assert not failures, "\n".join(failures)
    assert checked == len(USER_FIELDS) * len(ROLES) * len(TARGETS)


class Handover(BaseModel):
    """The body of a route the sweep does not know, which names a user."""

    assignee: str


def test_the_sweep_catches_a_write_naming_a_user_it_does_not_know(settings: Settings) -> None:
    app = create_app(settings)

    @app.post("/api/v1/handovers", dependencies=[Depends(require(Permission.coordinate))])
    def handover(body: Handover) -> dict[str, str]:
        return {"to": body.assignee}

    found = classify_user_fields(enumerate_routes(app)[0])
    assert found == ["POST /api/v1/handovers: field 'assignee' reads like a user: list it in USER_FIELDS or FREE_TEXT"]


def test_the_sweep_catches_an_unguarded_route_and_an_unknown_parameter(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/api/v1/widgets/{widget_id}")
    def widget(widget_id: int) -> dict[str, int]:
        return {"id": widget_id}

    @app.get("/open-page")
    def open_page() -> dict[str, str]:
        return {}

    endpoints, mounts, problems = enumerate_routes(app)
    found = "\n".join(problems + classify(endpoints, mounts))
    assert "GET /api/v1/widgets/{widget_id}: no permission dependency and not allow-listed" in found
    assert "unknown path parameter {widget_id}" in found
    assert "GET /open-page: no permission dependency and not allow-listed" in found
    assert "GET /api/v1/cases/{case_id}" not in found


def test_the_sweep_catches_a_route_that_forgets_the_hospital_scope(settings: Settings, engine: Engine) -> None:
    with session_scope(engine) as session:
        mine = _hospital(session, settings, "hosp-a", "a7c1")
        foreign = _hospital(session, settings, "hosp-b", "b7c1")
    app = create_app(settings)

    @app.get("/api/v1/leaky/{case_id}", dependencies=[Depends(require(Permission.read_cases))])
    def leaky(case_id: int, session: SessionDep) -> dict[str, Any]:
        case = session.get(Case, case_id)  # no scope: the bug the sweep is for
        return {"encounter": case.encounter_fhir_id if case else None}

    endpoints = [e for e in enumerate_routes(app)[0] if e.path == "/api/v1/leaky/{case_id}"]
    assert classify(endpoints, set()) == [  # guarded by a permission, so only the scope check can catch it
        f"{m} {p}: allow-listed but not registered" for m, p in sorted(OPEN | SIGNED_IN | CDS_JWT)
    ]
    clients = {Role.coordinator: token_client(app, engine, "anna", Role.coordinator, (mine.source_name,))}
    failures, checked = foreign_failures(clients, endpoints, mine, foreign)
    assert checked == 1
    assert failures == ["coordinator of hosp-a: GET /api/v1/leaky/{case_id} with hosp-b's ids -> 200 (wants 404)"]
