"""Search pages that cannot be read: retried with backoff, then FhirUnreadablePage naming the URL.

And paging that never ends (a next link back to a page already read, or more pages than any
search should have): FhirPagingLoop, without a retry, after the good pages were yielded.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import respx
from fhir_testkit import BASE

from discharge_bridge.fhir import (
    BearerTokenAuth,
    FhirClient,
    FhirFatalError,
    FhirPagingLoop,
    FhirTemporaryError,
    FhirUnreadablePage,
    RetryPolicy,
    SearchPage,
)

PAGE_2 = f"{BASE}/Encounter?_getpages=abc&_page=2"
HTML = "<html><head><title>Sign in</title></head><body>token=s3cr3t-t0ken patient Ivanova</body></html>"


def bundle(ids: list[str], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": {"resourceType": "Encounter", "id": i}} for i in ids],
    }


def _first_page(mock: respx.MockRouter) -> respx.Route:
    return mock.get(f"{BASE}/Encounter", params__eq={"class": "IMP"}).mock(
        return_value=httpx.Response(
            200, json=bundle(["e1"], "http://localhost:8090/fhir/Encounter?_getpages=abc&_page=2")
        )
    )


def _read_all(client: FhirClient, seen: list[SearchPage]) -> None:
    for page in client.search_pages("Encounter", {"class": "IMP"}):
        seen.append(page)


UNREADABLE = [
    pytest.param(
        httpx.Response(200, content=b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Enc'),
        "not valid JSON",
        id="truncated",
    ),
    pytest.param(
        httpx.Response(200, text=HTML, headers={"Content-Type": "text/html; charset=utf-8"}),
        "HTML",
        id="html-200",
    ),
    pytest.param(httpx.Response(200, json={"resourceType": "Patient", "id": "p1"}), "a Patient", id="not-a-bundle"),
    pytest.param(httpx.Response(200, json={"issues": []}), "no resourceType", id="no-resource-type"),
    pytest.param(httpx.Response(200, json=[bundle(["e2"])]), "not an object", id="json-array"),
    pytest.param(
        httpx.Response(200, json={"resourceType": "Bundle", "entry": {"resource": {}}}),
        "Bundle.entry is not a list",
        id="entry-not-a-list",
    ),
    pytest.param(httpx.Response(200, content=b""), "empty body", id="empty-200"),
]


@pytest.mark.parametrize(("response", "reason"), UNREADABLE)
def test_unreadable_page_is_retried_then_named_with_url_and_reason(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float], response: httpx.Response, reason: str
) -> None:
    _first_page(mock)
    bad = mock.get(f"{BASE}/Encounter", params__eq={"_getpages": "abc", "_page": "2"}).mock(return_value=response)
    seen: list[SearchPage] = []

    with pytest.raises(FhirUnreadablePage) as caught:
        _read_all(client, seen)

    error = caught.value
    assert [r["id"] for p in seen for r in p.resources] == ["e1"]  # the page before is not lost
    assert bad.call_count == client.retry.max_attempts == 5  # bounded, with backoff between tries
    assert len(sleeps) == 4
    assert isinstance(error, FhirTemporaryError)  # the next pass may well read it
    assert error.url == PAGE_2
    assert reason in error.reason
    message = str(error)
    assert PAGE_2 in message and reason in message and "gave up after 5 attempts" in message
    assert message.startswith("unreadable FHIR page")
    assert reason in message[:80]  # `sources list` shows the first 80 characters
    assert "s3cr3t" not in message and "Ivanova" not in message and "Sign in" not in message


@pytest.mark.parametrize(("response", "reason"), UNREADABLE)
def test_unreadable_page_once_then_readable_goes_on(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float], response: httpx.Response, reason: str
) -> None:
    _first_page(mock)
    mock.get(f"{BASE}/Encounter", params__eq={"_getpages": "abc", "_page": "2"}).mock(
        side_effect=[response, httpx.Response(200, json=bundle(["e2"]))]
    )
    seen: list[SearchPage] = []
    _read_all(client, seen)
    assert [r["id"] for p in seen for r in p.resources] == ["e1", "e2"]
    assert len(sleeps) == 1


def test_html_hint_points_at_the_base_url(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/Encounter").mock(
        return_value=httpx.Response(200, text=HTML, headers={"Content-Type": "text/html"})
    )
    with pytest.raises(FhirUnreadablePage, match="login proxy"):
        list(client.search_pages("Encounter", {"class": "IMP"}))


def test_operation_outcome_with_200_stays_fatal_without_retry(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float]
) -> None:
    # A readable refusal (unsupported parameter): retrying cannot change it, a person must.
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "diagnostics": "no _sort"}]}
    route = mock.get(f"{BASE}/Encounter").mock(return_value=httpx.Response(200, json=outcome))
    with pytest.raises(FhirFatalError, match="no _sort") as caught:
        list(client.search_pages("Encounter", {"_sort": "_lastUpdated"}))
    assert not isinstance(caught.value, FhirTemporaryError)
    assert route.call_count == 1 and sleeps == []


def test_patient_ids_and_tokens_in_the_url_are_masked_in_message_and_logs(
    mock: respx.MockRouter, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    mock.get(f"{BASE}/Condition", params__eq={"patient": "MRN-4711,MRN-4712", "_count": "50"}).mock(
        return_value=httpx.Response(
            200,
            json=bundle(
                [], "http://localhost:8090/fhir/Condition?patient=MRN-4711,MRN-4712&access_token=tok-999&_page=2"
            ),
        )
    )
    mock.get(f"{BASE}/Condition", params__contains={"_page": "2"}).mock(return_value=httpx.Response(200, content=b"{"))
    retry = RetryPolicy(max_attempts=3, sleep=sleeps.append)
    client = FhirClient(BASE, auth=BearerTokenAuth("bearer-xyz"), retry=retry)
    logs = caplog.at_level(logging.DEBUG, logger="discharge_bridge.fhir")
    with client, logs, pytest.raises(FhirUnreadablePage) as caught:
        list(client.search_pages("Condition", {"patient": "MRN-4711,MRN-4712", "_count": "50"}))
    message, url = str(caught.value), caught.value.url
    assert url == f"{BASE}/Condition?patient=***&access_token=***&_page=2"
    assert url in message
    for secret in ("MRN-47", "tok-999", "bearer-xyz"):
        assert secret not in message and secret not in caplog.text
    # the retry log says why, with the path only
    why = "not valid JSON, 1 bytes: a truncated body?"
    assert f"GET /fhir/Condition -> 200 unreadable ({why}); attempt 1/3, retrying in" in caplog.text


def test_next_link_back_to_a_page_read_before_is_a_paging_loop_naming_the_url(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float]
) -> None:
    _first_page(mock)
    mock.get(f"{BASE}/Encounter", params__eq={"_getpages": "abc", "_page": "2"}).mock(
        return_value=httpx.Response(200, json=bundle(["e2"], f"{BASE}/Encounter?_getpages=abc&_page=3"))
    )
    third = mock.get(f"{BASE}/Encounter", params__eq={"_getpages": "abc", "_page": "3"}).mock(
        return_value=httpx.Response(
            200, json=bundle(["e3"], "http://localhost:8090/fhir/Encounter?_getpages=abc&_page=2")
        )
    )
    seen: list[SearchPage] = []
    with pytest.raises(FhirPagingLoop) as caught:
        _read_all(client, seen)
    assert [r["id"] for p in seen for r in p.resources] == ["e1", "e2", "e3"]
    assert third.call_count == 1 and sleeps == []
    assert isinstance(caught.value, FhirFatalError)
    message = str(caught.value)
    assert message.startswith("FHIR paging loop")
    assert "already fetched" in message and "page 3" in message
    assert PAGE_2 in message and caught.value.url == PAGE_2


def test_search_longer_than_the_page_bound_stops(mock: respx.MockRouter, sleeps: list[float]) -> None:
    # Every page points to a new offset, for ever (an offset server that ignores the total).
    def endless(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("_offset", "0"))
        return httpx.Response(200, json=bundle([f"e{offset}"], f"{BASE}/Encounter?_offset={offset + 1}"))

    route = mock.get(f"{BASE}/Encounter").mock(side_effect=endless)
    client = FhirClient(BASE, retry=RetryPolicy(sleep=sleeps.append), max_pages=4)
    seen: list[SearchPage] = []
    with client, pytest.raises(FhirPagingLoop) as caught:
        for page in client.search_pages("Encounter", {"class": "IMP"}):
            seen.append(page)
    assert len(seen) == 4 and route.call_count == 4
    message = str(caught.value)
    assert "more than 4 pages" in message[:80]
    assert f"{BASE}/Encounter?_offset=4" in message


def test_page_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pages"):
        FhirClient(BASE, max_pages=0)


def test_unreadable_read_is_retried_too(client: FhirClient, mock: respx.MockRouter, sleeps: list[float]) -> None:
    route = mock.get(f"{BASE}/Patient/p1").mock(
        side_effect=[
            httpx.Response(200, text=HTML, headers={"Content-Type": "text/html"}),
            httpx.Response(200, json={"resourceType": "Patient", "id": "p1"}),
        ]
    )
    assert client.read("Patient", "p1")["id"] == "p1"
    assert route.call_count == 2 and len(sleeps) == 1
