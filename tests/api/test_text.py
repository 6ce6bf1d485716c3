"""Text that can be stored and shown, of a size that can be stored: no NUL or other control characters
(tab and line breaks only in multi-line notes), no lone surrogates, a bound on every string, list and
map the API takes (read from the served OpenAPI document itself); a 422 naming the field otherwise,
from the API and the pages alike. PostgreSQL refuses a NUL in any text, so those cases run on both."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.cases.contacts.models import CaseContact
from discharge_bridge.cases.models import Barrier
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.db import session_scope
from tests.api.conftest import Ward

pytestmark = pytest.mark.clock
NUL = quote("an\x00na")


def _locs(response: Any) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


def _refused(response: Any, *loc: str | int) -> None:
    assert response.status_code == 422, response.text[:400]
    assert list(loc) in _locs(response), response.text[:400]


@pytest.mark.parametrize("bad", ["\x00", "a\x00b", "\x1b[31m", "\x7f", "\x85", "\x08"])
def test_a_nul_or_control_character_in_a_task_a_contact_or_a_barrier_note_is_refused(
    api: TestClient, engine: Engine, ward: Ward, bad: str
) -> None:
    case = f"/api/v1/cases/{ward.case_id}"
    _refused(
        api.post(f"{case}/tasks", json={"description": f"Call {bad} her", "domain": "social"}), "body", "description"
    )
    _refused(api.post(f"{case}/contacts", json={"name": f"Olga{bad}P", "relationship": "DAU"}), "body", "name")
    _refused(api.post(f"{case}/barriers", json={"code": "housing", "note": f"waits{bad}."}), "body", "note")
    _refused(
        api.patch(f"/api/v1/barriers/{ward.barrier_id}", json={"note": f"line\n{bad}"}, headers={"If-Match": '"1"'}),
        "body",
        "note",
    )
    with session_scope(engine) as session:
        stored = [t.description for t in session.exec(select(Task))]
        stored += [c.name for c in session.exec(select(CaseContact))]
        stored += [b.note or "" for b in session.exec(select(Barrier))]
    assert not [text for text in stored if bad in text]


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/cases/{case_id}/tasks", {"description": "Call", "domain": "social", "owner": "an\nna"}, "owner"),
        ("/api/v1/cases/{case_id}/contacts", {"name": "Olga\nPetrova", "relationship": "DAU"}, "name"),
        (
            "/api/v1/cases/{case_id}/contacts",
            {"name": "Olga", "relationship": "DAU", "address": "Lenina\t5"},
            "address",
        ),
        (
            "/api/v1/cases/{case_id}/handoffs",
            {"destination_type": "relatives", "organisation": "Care\r\nHome"},
            "organisation",
        ),
        ("/api/v1/cases", {"source": "ci\x00ty", "encounter": "adm1"}, "source"),
        ("/api/v1/cases", {"source": "city", "encounter": "adm\x001"}, "encounter"),
    ],
)
def test_a_line_break_or_tab_in_a_one_line_field_is_refused(
    api: TestClient, ward: Ward, url: str, body: dict[str, Any], field: str
) -> None:
    _refused(api.post(url.format(case_id=ward.case_id), json=body), "body", field)


def test_tabs_and_line_breaks_are_kept_in_notes(api: TestClient, ward: Ward) -> None:
    note = "Waits for the housing office.\r\n\tNext call: Monday."
    added = api.post(f"/api/v1/cases/{ward.case_id}/barriers", json={"code": "housing", "note": note})
    assert added.status_code == 201 and added.json()["note"] == note
    task = api.post(
        f"/api/v1/cases/{ward.case_id}/tasks",
        json={"description": "Call the daughter\nthen the GP", "domain": "social"},
    )
    assert task.status_code == 201


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\udc00b"])
def test_a_lone_surrogate_is_refused_naming_the_field(api: TestClient, ward: Ward, escape: str) -> None:
    body = '{"description": "Call ' + escape + '", "domain": "social"}'
    response = api.post(
        f"/api/v1/cases/{ward.case_id}/tasks", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    _refused(response, "body", "description")


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/v1/worklist?q={bad}", "q"),
        ("/api/v1/worklist?ward={bad}", "ward"),
        ("/api/v1/worklist?coordinator={bad}", "coordinator"),
        ("/api/v1/worklist?source={bad}", "source"),
        ("/api/v1/cases?coordinator={bad}", "coordinator"),
        ("/api/v1/cases?source={bad}", "source"),
        ("/api/v1/board?ward={bad}", "ward"),
        ("/api/v1/board?hospital={bad}", "hospital"),
        ("/api/v1/access-log?username={bad}", "username"),
        ("/api/v1/access-log?patient={bad}", "patient"),
        ("/api/v1/audit?target={bad}", "target"),
    ],
)
def test_a_nul_in_a_query_parameter_is_refused_naming_it(api: TestClient, ward: Ward, url: str, param: str) -> None:
    _refused(api.get(url.format(bad=NUL)), "query", param)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/sources/ci%00ty",
        "/api/v1/sources/ci%00ty/deadletters",
        "/api/v1/sources/ci%00ty/conformance",
        "/it/sources/ci%00ty",
    ],
)
def test_a_nul_in_a_source_name_is_not_a_500(api: TestClient, ward: Ward, url: str) -> None:
    response = api.get(url)
    assert response.status_code in (404, 422), response.text[:300]


@pytest.mark.parametrize(
    ("url", "body", "loc"),
    [
        (
            "/api/v1/cases/{case_id}/assessment",
            {"version": 0, "domains": {"social": {"needs": ["a"] * 1000}}},
            ["body", "domains", "social", "needs"],
        ),
        (
            "/api/v1/handoffs/{handoff_id}",
            {"version": 1, "documents": {f"d{n}": True for n in range(1000)}},
            ["body", "documents"],
        ),
        (
            "/api/v1/cases/{case_id}/contacts/{contact_id}",
            {"version": 1, "phones": ["+7 900 555 12 34"] * 6},
            ["body", "phones"],
        ),
    ],
)
def test_lists_and_maps_are_bounded(
    api: TestClient, ward: Ward, url: str, body: dict[str, Any], loc: list[str]
) -> None:
    method = "PUT" if url.endswith("assessment") else "PATCH"
    target = url.format(case_id=ward.case_id, handoff_id=ward.handoff_id, contact_id=ward.contact_id)
    _refused(api.request(method, target, json=body), *loc)


# --- every input of the served OpenAPI document is bounded --------------------------------------------


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def unbounded(schema: dict[str, Any], spec: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    """Places of a request schema without a bound: a string without maxLength or a printable pattern, an
    integer without maximum, an array without maxItems, a map without maxProperties."""
    ref = schema.get("$ref")
    if ref is not None:
        if ref in seen:
            return []
        return unbounded(_resolve(schema, spec), spec, where, seen | {ref})
    problems: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for part in schema.get(key, []):
            problems += unbounded(part, spec, where, seen)
    kind = schema.get("type")
    if kind == "string" and "enum" not in schema and "const" not in schema and schema.get("format") != "date-time":
        if "maxLength" not in schema:
            problems.append(f"{where}: a string without maxLength")
        if "pattern" not in schema:
            problems.append(f"{where}: a string without a pattern (printable characters)")
    if kind == "integer" and "maximum" not in schema:
        problems.append(f"{where}: an integer without maximum")
    if kind == "array":
        if "maxItems" not in schema:
            problems.append(f"{where}: an array without maxItems")
        problems += unbounded(schema.get("items", {}), spec, f"{where}[]", seen)
    if kind == "object" or "properties" in schema:
        for name, sub in schema.get("properties", {}).items():
            problems += unbounded(sub, spec, f"{where}.{name}", seen)
        extra = schema.get("additionalProperties")
        values = [extra] if isinstance(extra, dict) else []
        values += list(schema.get("patternProperties", {}).values())
        if values:
            if "maxProperties" not in schema:
                problems.append(f"{where}: a map without maxProperties")
            names: dict[str, Any] = {"type": "string", **schema.get("propertyNames", {})}
            if schema.get("patternProperties"):  # the keys' pattern is the map's own
                names.setdefault("pattern", next(iter(schema["patternProperties"])))
            problems += unbounded(names, spec, f"{where}{{key}}", seen)
            for value in values:
                problems += unbounded(value, spec, f"{where}{{}}", seen)
    return problems


def test_the_bounds_check_finds_what_is_unbounded() -> None:
    found = unbounded(
        {
            "type": "object",
            "properties": {"a": {"type": "string", "maxLength": 9}, "b": {"type": "integer"}},
            "additionalProperties": {"type": "array", "items": {"type": "boolean"}},
        },
        {},
        "x",
        set(),
    )
    assert found == [
        "x.a: a string without a pattern (printable characters)",
        "x.b: an integer without maximum",
        "x: a map without maxProperties",
        "x{key}: a string without maxLength",
        "x{key}: a string without a pattern (printable characters)",
        "x{}: an array without maxItems",
    ]


def test_every_input_of_the_openapi_document_is_bounded(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    problems: list[str] = []
    operations = 0
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            operations += 1
            for param in operation.get("parameters", []):
                param = _resolve(param, spec)
                problems += unbounded(
                    param["schema"], spec, f"{method.upper()} {path} {param['in']} {param['name']}", set()
                )
            for media in operation.get("requestBody", {}).get("content", {}).values():
                problems += unbounded(media["schema"], spec, f"{method.upper()} {path} body", set())
    assert operations >= 40
    assert problems == []


@pytest.mark.parametrize("param", ["q", "ward", "coordinator", "rule"])
def test_the_worklist_page_refuses_a_nul_in_a_filter_by_its_control(api: TestClient, ward: Ward, param: str) -> None:
    """The page and the API read filters through the same query, which names the parameter at fault."""
    page = api.get(f"/worklist?{param}={NUL}")
    assert page.status_code == 422 and 'aria-invalid="true"' in page.text
    _refused(api.get(f"/api/v1/worklist?{param}={NUL}"), "query", param)


@pytest.mark.parametrize("param", ["ward", "hospital"])
def test_the_board_page_refuses_a_nul_in_a_filter(api: TestClient, ward: Ward, param: str) -> None:
    assert api.get(f"/board?{param}={NUL}").status_code == 422
