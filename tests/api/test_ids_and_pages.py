"""Ids, pages, cursors and versions are bounded at the edge: a number no database column holds is a 422
naming the parameter, never a 500 from the driver (an id of 2^64, and one past PostgreSQL's INTEGER, on
every ``/{id}`` route, the API's and the pages', found from the app's own routes; the largest id taken is
just not found, on both databases)."""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from discharge_bridge.app import create_app
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.referrals.service import create_referral
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import DirectoryService, Organisation, ServiceCategory
from discharge_bridge.users.service import issue_token
from discharge_bridge.validation import ID_MAX, OFFSET_MAX, VERSION_MAX
from tests.api.conftest import Ward
from tests.support.factories import make_user

pytestmark = pytest.mark.clock
sqlite_only = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)  # a database per route

HUGE = 2**64
# Routes only: building the app opens no database.
APP = create_app(Settings(data_dir=Path(tempfile.gettempdir()) / "discharge-bridge-routes"))


def _path_params(dependant: Dependant) -> Iterator[Any]:
    yield from dependant.path_params
    for sub in dependant.dependencies:
        yield from _path_params(sub)


def id_routes() -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path, the integer path parameters) of every route of the app that takes an id."""
    found: list[tuple[str, str, tuple[str, ...]]] = []
    for context in iter_route_contexts(APP.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        ints = tuple(sorted({p.name for p in _path_params(context.dependant) if p.field_info.annotation is int}))
        found += [(method, str(context.path_format), ints) for method in sorted(context.methods or ()) if ints]
    return found


ID_ROUTES = id_routes()


def _ids(ward: Ward) -> dict[str, int]:
    return {
        "case_id": ward.case_id,
        "task_id": ward.task_id,
        "handoff_id": ward.handoff_id,
        "barrier_id": ward.barrier_id,
        "contact_id": ward.contact_id,
        "letter_id": ward.letter_id,
        # The handoff network's objects: none in the ward, so any id of them is not found.
        "referral_id": 1,
        "consent_id": 1,
        "delivered_id": 1,
        "screening_id": 1,
        "service_id": 1,
        "organisation_id": 1,
    }


# Other path parameters, filled with a value of their kind (a referral's document code).
TEXT_PARAMS = {"code": "passport"}
# Routes an admin's role may not use (a receiver's portal, a psychologist's pages): asked by that role.
OTHER_ROLES = {("/api/v1/portal", "/portal"): "receiver", ("/api/v1/psychology", "/psychology"): "psychologist"}


@pytest.fixture
def role_clients(engine: Engine, settings: Settings, ward: Ward) -> dict[str, TestClient]:
    """A receiver (of an organisation) and a psychologist of the ward's hospital, by their API tokens; the
    ward's case is referred to a psychologist, so the psychologist's pages may show it."""
    with session_scope(engine) as session:
        organisation = Organisation(code="org-ids", name="Organisation", kind="city")
        session.add(organisation)
        session.flush()
        assert organisation.id is not None
        service = DirectoryService(
            code="psy-ids",
            organisation_id=organisation.id,
            name="Psychologist",
            category=ServiceCategory.psychologist,
            requires_consent=False,
        )
        session.add(service)
        session.flush()
        case = session.get(Case, ward.case_id)
        assert case is not None and service.id is not None
        create_referral(session, case, service_id=service.id, actor="anna")
        make_user(session, "rita", "receiver", organisation_id=organisation.id)
        make_user(session, "pavel", "psychologist")
        tokens = {"receiver": issue_token(session, "rita", "ids"), "psychologist": issue_token(session, "pavel", "ids")}
    app = create_app(settings)
    return {role: TestClient(app, headers={"Authorization": f"Bearer {token}"}) for role, token in tokens.items()}


def _client(api: TestClient, role_clients: dict[str, TestClient], path: str) -> TestClient:
    for prefixes, role in OTHER_ROLES.items():
        if path.startswith(prefixes):
            return role_clients[role]
    return api


def _locs(response: Any) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


def test_the_routes_with_ids_are_found() -> None:
    paths = {path for _, path, _ in ID_ROUTES}
    assert (
        len(ID_ROUTES) >= 45 and {"/api/v1/tasks/{task_id}", "/cases/{case_id}", "/it/deadletters/{letter_id}"} <= paths
    )
    assert set().union(*(ids for _, _, ids in ID_ROUTES)) == set(_ids(Ward(1, 1, 1, 1, 1, 1)))


@sqlite_only
@pytest.mark.parametrize(("method", "path", "ids"), ID_ROUTES, ids=[f"{m} {p}" for m, p, _ in ID_ROUTES])
def test_an_id_beyond_the_id_columns_is_a_422_naming_it(
    api: TestClient, role_clients: dict[str, TestClient], ward: Ward, method: str, path: str, ids: tuple[str, ...]
) -> None:
    client = _client(api, role_clients, path)
    for name in ids:
        for value in (HUGE, ID_MAX + 1):
            url = path.format(**{**_ids(ward), **TEXT_PARAMS, name: value})
            response = client.request(method, url, json={}, follow_redirects=False)
            assert response.status_code == 422, (url, response.status_code, response.text[:300])
            if path.startswith("/api/"):
                assert ["path", name] in _locs(response), response.text


def test_the_largest_id_taken_is_just_not_found(
    api: TestClient, role_clients: dict[str, TestClient], ward: Ward
) -> None:
    """On PostgreSQL too, whose id columns are 4 bytes: one past them was a DataError (a 500)."""
    answers = set()
    for method, path, ids in ID_ROUTES:
        client = _client(api, role_clients, path)
        for name in ids:
            url = path.format(**{**_ids(ward), **TEXT_PARAMS, name: ID_MAX})
            response = client.request(method, url, json={}, follow_redirects=False)
            answers.add(response.status_code)
            assert response.status_code in (404, 422), (url, response.status_code, response.text[:300])
    assert 404 in answers


def _cursor(sort: str, last_id: int) -> str:
    raw = json.dumps([sort, last_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/v1/cases?offset=0", "offset"),
        (f"/api/v1/cases?after={_cursor('cases', HUGE)}", "after"),
        (f"/api/v1/cases?after={_cursor('priority', 1)}", "after"),
        ("/api/v1/cases?limit={huge}", "limit"),
        ("/api/v1/cases/{case_id}/timeline?offset={huge}", "offset"),
        ("/api/v1/cases/{case_id}/timeline?limit={huge}", "limit"),
        ("/api/v1/worklist?limit={huge}", "limit"),
        (f"/api/v1/worklist?after={_cursor('priority', HUGE)}", "after"),
        (f"/api/v1/worklist?sort=name&after={_cursor('name', ID_MAX + 1)}", "after"),
        ("/api/v1/board?limit={huge}", "limit"),
        ("/api/v1/access-log?before_id={huge}", "before_id"),
        ("/api/v1/access-log.csv?before_id={huge}", "before_id"),
        ("/api/v1/audit?before_id={huge}", "before_id"),
        ("/api/v1/audit.csv?before_id={huge}", "before_id"),
        ("/api/v1/sources/city/deadletters?limit={huge}", "limit"),
    ],
)
def test_pages_and_cursors_beyond_their_bounds_are_a_422_naming_the_parameter(
    api: TestClient, ward: Ward, url: str, param: str
) -> None:
    response = api.get(url.format(huge=HUGE, case_id=ward.case_id))
    assert response.status_code == 422, response.text[:300]
    assert ["query", param] in _locs(response)


def test_the_largest_offset_is_an_empty_page(api: TestClient, ward: Ward) -> None:
    assert api.get(f"/api/v1/cases/{ward.case_id}/timeline?offset={OFFSET_MAX}").json() == []


def test_the_worklist_page_says_a_cursor_beyond_64_bits_is_not_one_of_its_own(api: TestClient, ward: Ward) -> None:
    response = api.get(f"/worklist?after={_cursor('priority', HUGE)}")
    assert response.status_code < 500


@pytest.mark.parametrize("if_match", ['"²"', '"٣"', 'W/"¹"', '"1\x00"'])
def test_an_if_match_of_other_digits_is_a_422_naming_the_header(api: TestClient, ward: Ward, if_match: str) -> None:
    """Digits of other scripts pass ``str.isdigit()`` and fail ``int()``: they were a 500."""
    headers = {"If-Match": if_match.encode()}  # UTF-8 on the wire, as a client may send it
    response = api.patch(f"/api/v1/tasks/{ward.task_id}", json={"owner": None}, headers=headers)
    assert response.status_code == 422
    assert ["header", "if-match"] in [[str(part).lower() for part in loc] for loc in _locs(response)]


@pytest.mark.parametrize("version", [HUGE, VERSION_MAX + 1, -1])
def test_a_version_beyond_its_column_is_a_422_naming_it(api: TestClient, ward: Ward, version: int) -> None:
    for method, url in [
        ("PATCH", f"/api/v1/tasks/{ward.task_id}"),
        ("PATCH", f"/api/v1/handoffs/{ward.handoff_id}"),
        ("PATCH", f"/api/v1/barriers/{ward.barrier_id}"),
        ("PATCH", f"/api/v1/cases/{ward.case_id}"),
        ("PATCH", f"/api/v1/cases/{ward.case_id}/contacts/{ward.contact_id}"),
        ("PUT", f"/api/v1/cases/{ward.case_id}/assessment"),
    ]:
        response = api.request(method, url, json={"version": version})
        assert response.status_code == 422 and ["body", "version"] in _locs(response), (url, response.text)


@pytest.mark.parametrize("version", ["²", "٣"])
def test_a_page_form_whose_version_is_other_digits_is_refused_not_a_500(
    api: TestClient, ward: Ward, version: str
) -> None:
    response = api.post(f"/cases/{ward.case_id}/keep", data={"version": version, "keep_reason": "x"})
    assert response.status_code == 422
