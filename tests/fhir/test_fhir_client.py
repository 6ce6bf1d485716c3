"""FhirClient reads, generic JSON calls, headers and base URL handling."""

from __future__ import annotations

import re

import httpx
import orjson
import pytest
import respx
from fhir_testkit import BASE

from discharge_bridge.fhir import FhirClient, FhirFatalError, FhirNotFound, RetryPolicy


def test_sends_fhir_accept_user_agent_and_extra_headers(mock: respx.MockRouter) -> None:
    route = mock.get(f"{BASE}/Patient/p1").respond(200, json={"resourceType": "Patient", "id": "p1"})
    headers = {"X-Tenant": "north", "Accept": "text/html"}  # Accept cannot be overridden
    with FhirClient(BASE + "/", headers=headers, user_agent="db-test/9") as client:
        client.read("Patient", "p1")
    sent = route.calls.last.request.headers
    assert sent["Accept"] == "application/fhir+json"
    assert sent["User-Agent"] == "db-test/9"
    assert sent["X-Tenant"] == "north"


def test_read_returns_resource(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/Encounter/enc-1.a").respond(200, json={"resourceType": "Encounter", "id": "enc-1.a"})
    assert client.read("Encounter", "enc-1.a") == {"resourceType": "Encounter", "id": "enc-1.a"}


def test_read_deleted_resource_is_not_found(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/Patient/gone").respond(410)
    with pytest.raises(FhirNotFound) as caught:
        client.read("Patient", "gone")
    assert caught.value.status_code == 410
    assert caught.value.url == f"{BASE}/Patient/gone"


def test_read_of_wrong_resource_type_is_fatal(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/Patient/p1").respond(200, json={"resourceType": "Bundle"})
    with pytest.raises(FhirFatalError, match="returned Bundle"):
        client.read("Patient", "p1")


@pytest.mark.parametrize("bad_id", ["../metadata", "a/b", "x?y=1", "", "a" * 65])
def test_read_refuses_ids_outside_fhir_grammar(client: FhirClient, mock: respx.MockRouter, bad_id: str) -> None:
    with pytest.raises(FhirFatalError, match="not a FHIR resource id"):
        client.read("Patient", bad_id)
    assert not mock.calls


def test_get_json_relative_path_and_params(client: FhirClient, mock: respx.MockRouter) -> None:
    route = mock.get(f"{BASE}/Patient/$everything").respond(200, json={"resourceType": "Bundle"})
    assert client.get_json("/Patient/$everything", {"_count": "5"}) == {"resourceType": "Bundle"}
    assert route.calls.last.request.url.params["_count"] == "5"


def test_get_json_absolute_url_is_pinned_to_base(client: FhirClient, mock: respx.MockRouter) -> None:
    # A Bulk Data Content-Location advertised with the server's idea of its own host.
    route = mock.get(f"{BASE}/bulkstatus/42").respond(200, json={"transactionTime": "2025-06-03T10:00:00Z"})
    body = client.get_json("http://localhost:8090/fhir/bulkstatus/42")
    assert body["transactionTime"] == "2025-06-03T10:00:00Z"
    assert route.call_count == 1


def test_get_json_with_202_and_empty_body_returns_empty_dict(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/bulkstatus/42").respond(202, headers={"X-Progress": "50%"})
    assert client.get_json("bulkstatus/42") == {}


def test_get_json_empty_200_is_temporary_and_retried(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float]
) -> None:
    route = mock.get(f"{BASE}/metadata").mock(
        side_effect=[httpx.Response(200), httpx.Response(200, json={"resourceType": "CapabilityStatement"})]
    )
    assert client.capabilities()["resourceType"] == "CapabilityStatement"
    assert route.call_count == 2
    assert len(sleeps) == 1


def test_capabilities_rejects_other_documents(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/metadata").respond(200, json={"resourceType": "Conformance"})
    with pytest.raises(FhirFatalError, match="not a CapabilityStatement"):
        client.capabilities()


def test_post_json_sends_fhir_json_and_returns_body(client: FhirClient, mock: respx.MockRouter) -> None:
    route = mock.post(f"{BASE}/Subscription").respond(201, json={"resourceType": "Subscription", "id": "s1"})
    body = {"resourceType": "Subscription", "status": "requested", "criteria": "Encounter?class=IMP"}
    assert client.post_json("Subscription", body) == {"resourceType": "Subscription", "id": "s1"}
    request = route.calls.last.request
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert orjson.loads(request.content) == body


def test_post_json_with_minimal_return_gives_none(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.post(f"{BASE}/Task").respond(201, headers={"Location": f"{BASE}/Task/t1/_history/1"})
    assert client.post_json("Task", {"resourceType": "Task"}) is None


def test_put_json_passes_if_match_and_maps_conflict(client: FhirClient, mock: respx.MockRouter) -> None:
    route = mock.put(f"{BASE}/Task/t1").respond(
        412,
        json={"resourceType": "OperationOutcome", "issue": [{"diagnostics": "version conflict: current is 3"}]},
    )
    with pytest.raises(FhirFatalError, match="version conflict: current is 3") as caught:
        client.put_json("Task/t1", {"resourceType": "Task", "id": "t1"}, headers={"If-Match": 'W/"2"'})
    assert caught.value.status_code == 412
    assert route.calls.last.request.headers["If-Match"] == 'W/"2"'


def test_put_is_idempotent_and_retried(client: FhirClient, mock: respx.MockRouter, sleeps: list[float]) -> None:
    route = mock.put(f"{BASE}/Task/t1").mock(
        side_effect=[httpx.Response(500), httpx.Response(200, json={"resourceType": "Task", "id": "t1"})]
    )
    assert client.put_json("Task/t1", {"resourceType": "Task", "id": "t1"}) == {"resourceType": "Task", "id": "t1"}
    assert route.call_count == 2


def test_delete_returns_none_on_204(client: FhirClient, mock: respx.MockRouter) -> None:
    route = mock.delete(f"{BASE}/bulkstatus/42").respond(204)
    assert client.delete("bulkstatus/42") is None
    assert route.call_count == 1


def test_request_exposes_headers_for_bulk_kickoff(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/Group/g1/$export").respond(202, headers={"Content-Location": f"{BASE}/bulkstatus/42"})
    response = client.request("get", "Group/g1/$export", headers={"Prefer": "respond-async"})
    assert response.status_code == 202
    assert response.headers["Content-Location"] == f"{BASE}/bulkstatus/42"
    assert mock.calls.last.request.headers["Prefer"] == "respond-async"


def test_redirect_is_not_followed(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/metadata").respond(301, headers={"Location": "https://127.0.0.1:54321/fhir/metadata"})
    with pytest.raises(FhirFatalError, match=re.escape("redirecting to https://127.0.0.1:54321/fhir/metadata")):
        client.capabilities()
    assert len(mock.calls) == 1


@pytest.mark.parametrize(
    "base", ["127.0.0.1:8080/fhir", "ftp://host/fhir", "http:///fhir", "http://host/fhir?x=1", "http://h:99999/f"]
)
def test_malformed_base_url_is_fatal(base: str) -> None:
    with pytest.raises(FhirFatalError, match="base URL"):
        FhirClient(base)


def test_base_url_with_credentials_is_refused_without_echo() -> None:
    with pytest.raises(FhirFatalError) as caught:
        FhirClient("https://svc:hunter2@ehr.example/fhir")
    assert "hunter2" not in str(caught.value)
    assert "credentials" in str(caught.value)


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_mock_transport_works_as_a_fake_server() -> None:
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resourceType": "Patient", "id": "p9"})

    with FhirClient("https://ehr.example/r4", transport=httpx.MockTransport(server)) as client:
        assert client.read("Patient", "p9")["id"] == "p9"
    assert str(seen[0].url) == "https://ehr.example/r4/Patient/p9"
