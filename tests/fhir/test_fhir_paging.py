"""Search paging: next links from misconfigured servers, loops, non-Bundle answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from fhir_testkit import BASE

from discharge_bridge.fhir import FhirClient, FhirFatalError, SearchPage
from discharge_bridge.fhir._urls import rebase_url


def bundle(ids: list[str], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "self", "url": "http://localhost:8090/fhir/Encounter"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": {"resourceType": "Encounter", "id": i}} for i in ids],
    }


def test_three_pages_with_foreign_host_port_and_path(client: FhirClient, mock: respx.MockRouter) -> None:
    # HAPI behind a proxy: it believes it is http://localhost:8090/baseR4, we reach it elsewhere.
    first = mock.get(f"{BASE}/Encounter", params__eq={"class": "IMP"}).mock(
        return_value=httpx.Response(
            200,
            json=bundle(["e1", "e2"], "http://localhost:8090/fhir/Encounter?class=IMP&_page=2"),
            headers={"Date": "Tue, 03 Jun 2025 10:00:00 GMT"},
        )
    )
    second = mock.get(f"{BASE}/Encounter", params__eq={"class": "IMP", "_page": "2"}).mock(
        return_value=httpx.Response(200, json=bundle(["e3"], "https://fhir.internal:9443/baseR4?_getpages=abc&_o=20"))
    )
    third = mock.get(BASE, params__eq={"_getpages": "abc", "_o": "20"}).mock(
        return_value=httpx.Response(200, json=bundle(["e4"]))
    )

    pages = list(client.search_pages("Encounter", {"class": "IMP"}))

    assert [r["id"] for p in pages for r in p.resources] == ["e1", "e2", "e3", "e4"]
    assert (first.call_count, second.call_count, third.call_count) == (1, 1, 1)
    assert pages[0].url == f"{BASE}/Encounter?class=IMP"
    assert pages[0].next_url == f"{BASE}/Encounter?class=IMP&_page=2"
    assert pages[1].url == f"{BASE}/Encounter?class=IMP&_page=2"
    assert pages[1].next_url == f"{BASE}?_getpages=abc&_o=20"
    assert pages[2].next_url is None
    assert pages[0].server_date == datetime(2025, 6, 3, 10, 0, tzinfo=UTC)
    assert pages[1].server_date is None
    assert pages[0].nbytes == len(first.calls.last.response.content)
    assert all(c.request.url.host == "127.0.0.1" for c in mock.calls)


def test_relative_next_links_resolve_against_base(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/Encounter", params__eq={"status": "in-progress"}).mock(
        return_value=httpx.Response(200, json=bundle(["e1"], "Encounter?status=in-progress&page=2"))
    )
    mock.get(f"{BASE}/Encounter", params__eq={"status": "in-progress", "page": "2"}).mock(
        return_value=httpx.Response(200, json=bundle(["e2"], "/fhir/Encounter?status=in-progress&page=3"))
    )
    mock.get(f"{BASE}/Encounter", params__eq={"status": "in-progress", "page": "3"}).mock(
        return_value=httpx.Response(200, json=bundle(["e3"]))
    )

    pages = list(client.search_pages("Encounter", {"status": "in-progress"}))

    assert [p.next_url for p in pages] == [
        f"{BASE}/Encounter?status=in-progress&page=2",
        f"{BASE}/Encounter?status=in-progress&page=3",
        None,
    ]
    assert [r["id"] for p in pages for r in p.resources] == ["e1", "e2", "e3"]


def test_repeated_next_link_stops_with_fatal_error(client: FhirClient, mock: respx.MockRouter) -> None:
    looping = f"{BASE}/Encounter?_page=2"
    mock.get(f"{BASE}/Encounter", params__eq={"_count": "2"}).mock(
        return_value=httpx.Response(200, json=bundle(["e1"], looping))
    )
    route = mock.get(f"{BASE}/Encounter", params__eq={"_page": "2"}).mock(
        return_value=httpx.Response(200, json=bundle(["e2"], "http://localhost:8090/fhir/Encounter?_page=2"))
    )
    seen: list[SearchPage] = []
    with pytest.raises(FhirFatalError, match="already fetched"):
        for page in client.search_pages("Encounter", {"_count": "2"}):
            seen.append(page)
    assert len(seen) == 2
    assert route.call_count == 1


def test_next_link_back_to_first_page_is_caught(client: FhirClient, mock: respx.MockRouter) -> None:
    route = mock.get(f"{BASE}/Patient").mock(
        return_value=httpx.Response(200, json=bundle([], "http://localhost:8090/fhir/Patient?name=x"))
    )
    with pytest.raises(FhirFatalError):
        list(client.search_pages("Patient", {"name": "x"}))
    assert route.call_count == 1


def test_each_page_is_retried_on_its_own(client: FhirClient, mock: respx.MockRouter, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/Encounter", params__eq={"a": "1"}).mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=bundle(["e1"], f"{BASE}/Encounter?p=2"))]
    )
    mock.get(f"{BASE}/Encounter", params__eq={"p": "2"}).mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=bundle(["e2"]))]
    )
    pages = list(client.search_pages("Encounter", {"a": "1"}))
    assert len(pages) == 2
    assert len(sleeps) == 2


def test_operation_outcome_with_200_is_fatal(client: FhirClient, mock: respx.MockRouter) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "_has is not supported"}],
    }
    mock.get(f"{BASE}/Patient").mock(return_value=httpx.Response(200, json=outcome))
    with pytest.raises(FhirFatalError, match="OperationOutcome instead of a Bundle: _has is not supported"):
        list(client.search_pages("Patient", {"_has:Encounter:patient:status": "in-progress"}))


def test_sequence_params_repeat_the_parameter(client: FhirClient, mock: respx.MockRouter) -> None:
    route = mock.get(f"{BASE}/Encounter").mock(return_value=httpx.Response(200, json=bundle([])))
    list(client.search_pages("Encounter", {"date": ["ge2025-01-01", "lt2025-02-01"], "class": "IMP"}))
    query = route.calls.last.request.url.params
    assert query.get_list("date") == ["ge2025-01-01", "lt2025-02-01"]
    assert query["class"] == "IMP"


def test_invalid_resource_type_is_refused_before_sending(client: FhirClient, mock: respx.MockRouter) -> None:
    with pytest.raises(FhirFatalError, match="not a FHIR resource type"):
        list(client.search_pages("../admin", {}))
    assert not mock.calls


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("http://localhost:8090/fhir/Encounter?x=1", "http://127.0.0.1:54321/fhir/Encounter?x=1"),
        ("https://other:1/baseR4/Encounter/_search?x=1", "http://127.0.0.1:54321/fhir/Encounter/_search?x=1"),
        ("http://localhost:8090/baseR4?_getpages=a", "http://127.0.0.1:54321/fhir?_getpages=a"),
        ("Encounter?x=1", "http://127.0.0.1:54321/fhir/Encounter?x=1"),
        ("/fhir/Encounter?x=1", "http://127.0.0.1:54321/fhir/Encounter?x=1"),
        ("?_getpages=a", "http://127.0.0.1:54321/fhir?_getpages=a"),
        (
            "http://localhost/fhir/Encounter?name=O%27Brien%20Mary",
            "http://127.0.0.1:54321/fhir/Encounter?name=O%27Brien%20Mary",
        ),
    ],
)
def test_rebase_url_for_search_links(link: str, expected: str) -> None:
    assert rebase_url(link, BASE, resource_type="Encounter") == expected


def test_rebase_url_keeps_foreign_path_without_resource_type() -> None:
    # Bulk Data status URLs carry no resource type: only the origin is pinned.
    assert rebase_url("http://localhost:8090/fhir/bulkstatus/42", BASE) == "http://127.0.0.1:54321/fhir/bulkstatus/42"


def test_rebase_url_with_root_base() -> None:
    assert (
        rebase_url("http://localhost:8090/Encounter?p=2", "https://ehr.example") == "https://ehr.example/Encounter?p=2"
    )
