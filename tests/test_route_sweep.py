"""The route sweep: every registered route answers 401 / 403 / 404 where it must, for every role.

The routes come from the app itself through ``fastapi.routing.iter_route_contexts`` (since FastAPI
0.137 ``app.routes`` holds one opaque entry per included router, so a plain loop over it would
sweep nothing and pass). A route that is neither allow-listed below nor carries a permission
dependency (``deps.require`` / ``deps.require_by_method``, found by walking its dependency tree)
fails here by path, and a path parameter the sweep cannot fill with another hospital's object fails
by name: a new route cannot escape. SQLite only (fast).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import Depends, FastAPI, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.routing import Mount, Route

from discharge_bridge.app import create_app
from discharge_bridge.cases.barriers import add_barrier
from discharge_bridge.cases.contacts.service import add_contact
from discharge_bridge.cases.handoffs.models import DestinationType
from discharge_bridge.cases.handoffs.service import create_handoff
from discharge_bridge.cases.models import BarrierCode, Case
from discharge_bridge.cases.tasks.repository import list_tasks
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SAFE_METHODS, SessionDep, current_principal, require
from discharge_bridge.ingest.models import DeadLetter
from discharge_bridge.ingest.store import record_dead_letter
from discharge_bridge.users.roles import ROLE_PERMISSIONS, Permission, Role
from discharge_bridge.users.service import issue_token
from tests.support.factories import flagged_case, make_source, make_user

# SQLite only: fast, and the scoping SQL itself runs on both databases in the domain tests.
pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)

# Open to anyone: health checks, the sign-in form and the favicon. Static files are a Mount.
OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/login"), ("POST", "/login"), ("GET", "/favicon.ico")}
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
STRICT_401 = ("/api/", "/metrics", "/openapi.json")
ROLES = (Role.coordinator, Role.bed_manager, Role.it_admin, Role.admin)
SCOPED_ROLES = (Role.coordinator, Role.bed_manager, Role.it_admin)  # admins see every hospital


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


def _fill_source(h: Hospital) -> str:
    return h.source_name


# Path parameter name -> the object of a hospital that fills it.
PATH_PARAMS: dict[str, Callable[[Hospital], Any]] = {
    "case_id": lambda h: h.case_id,
    "task_id": lambda h: h.task_id,
    "handoff_id": lambda h: h.handoff_id,
    "barrier_id": lambda h: h.barrier_id,
    "contact_id": lambda h: h.contact_id,
    "name": _fill_source,
    "source": _fill_source,
    "source_name": _fill_source,
    "dead_letter_id": lambda h: h.dead_letter_id,
    "deadletter_id": lambda h: h.dead_letter_id,
    "letter_id": lambda h: h.dead_letter_id,
}

# Bodies the generator below cannot guess (it fills required fields with placeholders).
BODIES: dict[tuple[str, str], Callable[[Hospital], dict[str, Any]]] = {
    ("POST", "/api/v1/cases"): lambda h: {"source": h.source_name, "encounter": h.encounter},
    ("POST", "/account/language"): lambda h: {"language": "en"},
    ("POST", "/api/v1/cases/{case_id}/contact-log"): lambda h: {
        "contact": f"added/{h.contact_id}",
        "kind": "call",
        "outcome": "no_answer",
    },
}


@dataclass
class Endpoint:
    method: str
    path: str
    dependant: Dependant | None  # None for plain Starlette routes
    body_params: list[Any]

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
        for method in sorted(context.methods or ()):
            if method != "HEAD":  # answered as GET
                endpoints.append(Endpoint(method, context.path_format, dependant, body))
    return endpoints, mounts, problems


def classify(endpoints: list[Endpoint], mounts: set[str]) -> list[str]:
    """Routes that escape the sweep: unguarded, unknown parameters, stale allow-list entries."""
    problems = [f"mount {m}: not in OPEN_MOUNTS" for m in sorted(mounts - OPEN_MOUNTS)]
    keys = {e.key for e in endpoints}
    problems += [f"{m} {p}: allow-listed but not registered" for m, p in sorted((OPEN | SIGNED_IN) - keys)]
    for e in endpoints:
        if e.key in OPEN or e.webhook():
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
    return Hospital(name, f"enc-{tag}", f"pat-{tag}", case.id, task.id, handoff.id, barrier.id, letter.id, contact.id)


def token_client(app: FastAPI, engine: Engine, username: str, role: Role, sources: tuple[str, ...]) -> TestClient:
    """A user's API token on ``app``; a 5xx comes back as a status to report, not as an exception."""
    with session_scope(engine) as session:
        make_user(session, username, role.value, sources)
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

    clients = {role: token_client(app, engine, f"sweep-{role.value}", role, (mine.source_name,)) for role in ROLES}
    swept = [e for e in endpoints if e.key not in OPEN]
    guarded = [e for e in swept if not e.webhook()]
    failures = anonymous_failures(app, swept, mine)
    found, checked = foreign_failures(clients, guarded, mine, foreign)
    failures += found + role_failures(clients, guarded, mine)
    assert not failures, "\n".join(failures)
    assert checked >= 15  # every route with an id of a scoped object was tried with hospital B's


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
        f"{m} {p}: allow-listed but not registered" for m, p in sorted(OPEN | SIGNED_IN)
    ]
    clients = {Role.coordinator: token_client(app, engine, "anna", Role.coordinator, (mine.source_name,))}
    failures, checked = foreign_failures(clients, endpoints, mine, foreign)
    assert checked == 1
    assert failures == ["coordinator of hosp-a: GET /api/v1/leaky/{case_id} with hosp-b's ids -> 200 (wants 404)"]
