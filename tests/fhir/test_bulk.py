"""The Bulk Data client: kick-off, status polling (Retry-After, X-Progress, 429s, failures), NDJSON streams."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
import respx
from fhir_testkit import BASE

from discharge_bridge.fhir import (
    BadLine,
    BearerTokenAuth,
    BulkExportClient,
    BulkExportFailed,
    ExportFile,
    ExportManifest,
    ExportProgress,
    FhirClient,
    FhirNotFound,
    FhirTemporaryError,
    RetryPolicy,
)

STATUS = f"{BASE}/bulk-status/job1"
ADVERTISED_STATUS = "http://localhost:8090/fhir/bulk-status/job1"  # servers advertise their own idea of the host
MANIFEST = {
    "transactionTime": "2026-11-23T10:00:00.000Z",
    "request": f"{BASE}/Patient/$export",
    "requiresAccessToken": True,
    "output": [
        {"type": "Encounter", "url": "http://localhost:8090/fhir/files/Encounter.ndjson", "count": 3},
        {"type": "Patient", "url": f"{BASE}/files/Patient.ndjson"},
    ],
    "error": [{"type": "OperationOutcome", "url": f"{BASE}/files/errors.ndjson"}],
}


@pytest.fixture
def bulk(client: FhirClient, sleeps: list[float]) -> Iterator[BulkExportClient]:
    exporter = BulkExportClient(client, sleep=sleeps.append)
    yield exporter
    exporter.close()


def test_kick_off_asks_asynchronously_for_the_types_and_since(bulk: BulkExportClient, mock: respx.MockRouter) -> None:
    route = mock.get(f"{BASE}/Patient/$export").mock(
        return_value=httpx.Response(202, headers={"Content-Location": ADVERTISED_STATUS})
    )
    url = bulk.kick_off(types=["Patient", "Encounter"], since="2026-11-01T00:00:00.000Z")
    assert url == STATUS  # pinned to the configured base
    request = route.calls.last.request
    assert request.headers["prefer"] == "respond-async"
    assert request.headers["accept"] == "application/fhir+json"
    assert dict(request.url.params) == {"_type": "Patient,Encounter", "_since": "2026-11-01T00:00:00.000Z"}

    group = mock.get(f"{BASE}/Group/inpatients/$export").mock(
        return_value=httpx.Response(202, headers={"Content-Location": STATUS})
    )
    assert bulk.kick_off(group_id="inpatients") == STATUS
    assert group.called and dict(group.calls.last.request.url.params) == {}


def test_kick_off_refusals(bulk: BulkExportClient, mock: respx.MockRouter, sleeps: list[float]) -> None:
    route = mock.get(f"{BASE}/Patient/$export")
    route.mock(return_value=httpx.Response(200, json={"resourceType": "Bundle"}))
    with pytest.raises(BulkExportFailed, match="instead of 202"):
        bulk.kick_off()
    route.mock(return_value=httpx.Response(202))
    with pytest.raises(BulkExportFailed, match="no Content-Location"):
        bulk.kick_off()
    route.mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "11"}),
            httpx.Response(202, headers={"Content-Location": STATUS}),
        ]
    )
    assert bulk.kick_off() == STATUS and sleeps == [11.0]
    with pytest.raises(Exception, match="not a FHIR resource id"):
        bulk.kick_off(group_id="../Patient")


def test_waiting_honours_retry_after_and_reports_progress(
    bulk: BulkExportClient, mock: respx.MockRouter, sleeps: list[float]
) -> None:
    mock.get(STATUS).mock(
        side_effect=[
            httpx.Response(202, headers={"X-Progress": "30%", "Retry-After": "3"}),
            httpx.Response(202, headers={"X-Progress": "writing"}),  # no Retry-After: the default wait
            httpx.Response(202, headers={"Retry-After": "86400"}),  # absurd: clamped
            httpx.Response(429, headers={"Retry-After": "7"}),  # too eager: wait and poll again
            httpx.Response(202, headers={"Retry-After": "0"}),  # never hammer the server
            httpx.Response(200, json=MANIFEST),
        ]
    )
    seen: list[str | None] = []
    manifest = bulk.wait(ADVERTISED_STATUS, on_progress=seen.append)
    assert sleeps == [3.0, 5.0, 120.0, 7.0, 1.0]
    assert seen == ["30%", "writing", None, None]
    assert manifest.transaction_time == "2026-11-23T10:00:00.000Z" and manifest.requires_access_token
    assert [(f.type, f.count) for f in manifest.output] == [("Encounter", 3), ("Patient", None)]
    assert [f.type for f in manifest.error] == ["OperationOutcome"]
    assert ExportManifest.from_json(manifest.to_json()) == manifest


def test_a_failed_job_is_fatal_but_a_transient_outcome_is_retried(
    bulk: BulkExportClient, mock: respx.MockRouter, sleeps: list[float]
) -> None:
    failed = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": "disk full"}],
    }
    transient = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]}
    route = mock.get(STATUS)
    route.mock(side_effect=[httpx.Response(500, json=transient), httpx.Response(200, json=MANIFEST)])
    assert isinstance(bulk.poll(STATUS), ExportManifest)
    route.mock(side_effect=[httpx.Response(500, json=failed)])
    with pytest.raises(BulkExportFailed, match="disk full"):
        bulk.poll(STATUS)
    route.mock(return_value=httpx.Response(404))
    with pytest.raises(FhirNotFound):
        bulk.poll(STATUS)
    route.mock(return_value=httpx.Response(200, json={"output": []}))
    with pytest.raises(BulkExportFailed, match="no transactionTime"):
        bulk.poll(STATUS)
    route.mock(return_value=httpx.Response(202, headers={"X-Progress": "queued"}))
    assert bulk.poll(STATUS) == ExportProgress("queued", None)


def test_waiting_gives_up_after_the_timeout(mock: respx.MockRouter, client: FhirClient) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    exporter = BulkExportClient(client, sleep=sleep, clock=lambda: now[0])
    mock.get(STATUS).mock(return_value=httpx.Response(202, headers={"Retry-After": "10"}))
    with pytest.raises(FhirTemporaryError, match="still running after 35 s"):
        exporter.wait(STATUS, timeout=35)
    assert now[0] == 30.0


def _ndjson(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


def test_ndjson_lines_are_parsed_and_bad_lines_set_aside(bulk: BulkExportClient, mock: respx.MockRouter) -> None:
    body = _ndjson(
        b'{"resourceType":"Patient","id":"a"}', b"", b"{oops", b"[1]", b'{"resourceType":"Patient","id":"b"}'
    )
    route = mock.get(f"{BASE}/files/Patient.ndjson").mock(return_value=httpx.Response(200, content=body))
    items = list(bulk.iter_resources(ExportFile("Patient", f"{BASE}/files/Patient.ndjson")))
    assert [n for n, _ in items] == [1, 3, 4, 5]
    assert items[0][1] == {"resourceType": "Patient", "id": "a"}
    assert isinstance(items[1][1], BadLine) and items[1][1].text == "{oops" and "line 3" in items[1][1].reason
    assert isinstance(items[2][1], BadLine) and "not an object" in items[2][1].reason
    assert route.calls.last.request.headers["accept"] == "application/fhir+ndjson"
    assert [n for n, _ in bulk.iter_lines(ExportFile("Patient", f"{BASE}/files/Patient.ndjson"), skip=3)] == [4, 5]


class _Breaking(httpx.SyncByteStream):
    """Sends `good` lines, then the connection drops."""

    def __init__(self, lines: list[bytes], good: int) -> None:
        self.lines, self.good = lines, good

    def __iter__(self) -> Iterator[bytes]:
        for line in self.lines[: self.good]:
            yield line + b"\n"
        raise httpx.ReadError("connection reset by peer")


def test_a_download_that_breaks_resumes_after_the_lines_already_read(
    bulk: BulkExportClient, mock: respx.MockRouter, sleeps: list[float]
) -> None:
    lines = [orjson.dumps({"resourceType": "Encounter", "id": f"e{i}"}) for i in range(6)]
    url = f"{BASE}/files/Encounter.ndjson"
    route = mock.get(url).mock(
        side_effect=[
            httpx.Response(200, stream=_Breaking(lines, 2)),
            httpx.Response(503),
            httpx.Response(200, stream=_Breaking(lines, 4)),
            httpx.Response(200, content=_ndjson(*lines)),
        ]
    )
    got = [item["id"] for _, item in bulk.iter_resources(ExportFile("Encounter", url)) if isinstance(item, dict)]
    assert got == [f"e{i}" for i in range(6)]  # each once, in order
    assert route.call_count == 4 and len(sleeps) == 3


def test_a_download_that_keeps_failing_gives_up(client: FhirClient, mock: respx.MockRouter) -> None:
    exporter = BulkExportClient(client)
    client.retry = RetryPolicy(max_attempts=3, sleep=lambda s: None)
    url = f"{BASE}/files/Encounter.ndjson"
    route = mock.get(url).mock(return_value=httpx.Response(502))
    with pytest.raises(FhirTemporaryError) as caught:
        list(exporter.iter_lines(ExportFile("Encounter", url)))
    assert route.call_count == 3 and caught.value.attempts == 3
    route.mock(return_value=httpx.Response(410))
    with pytest.raises(FhirNotFound):
        list(exporter.iter_lines(ExportFile("Encounter", url)))


def test_credentials_go_only_to_the_fhir_server(mock: respx.MockRouter, retry: RetryPolicy) -> None:
    client = FhirClient(BASE, auth=BearerTokenAuth("sekret-token"), retry=retry)
    exporter = BulkExportClient(client)
    body = _ndjson(b'{"resourceType":"Patient","id":"a"}')
    pinned = mock.get(f"{BASE}/files/Patient.ndjson").mock(return_value=httpx.Response(200, content=body))
    storage = mock.get("https://storage.example/x/Patient.ndjson").mock(return_value=httpx.Response(200, content=body))

    # needs our token: the advertised host is replaced by the configured one
    assert len(list(exporter.iter_lines(ExportFile("Patient", "http://localhost:8090/fhir/files/Patient.ndjson")))) == 1
    assert pinned.calls.last.request.headers["authorization"] == "Bearer sekret-token"
    # needs none: fetched where it is, without our credentials
    signed = ExportFile("Patient", "https://storage.example/x/Patient.ndjson")
    assert len(list(exporter.iter_lines(signed, requires_access_token=False))) == 1
    assert "authorization" not in storage.calls.last.request.headers
    exporter.close()
    client.close()


def test_cancel_deletes_the_job_and_tolerates_one_already_gone(bulk: BulkExportClient, mock: respx.MockRouter) -> None:
    route = mock.delete(STATUS).mock(side_effect=[httpx.Response(202), httpx.Response(404)])
    bulk.cancel(ADVERTISED_STATUS)
    bulk.cancel(STATUS)
    assert route.call_count == 2
