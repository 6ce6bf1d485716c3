"""Retry, backoff and error classification, seen through FhirClient calls."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import pytest
import respx
from fhir_testkit import BASE

from discharge_bridge.fhir import (
    FhirAuthError,
    FhirClient,
    FhirFatalError,
    FhirNotFound,
    FhirTemporaryError,
    FhirUnreadablePage,
    RetryPolicy,
)
from discharge_bridge.fhir._retry import parse_retry_after

PATIENT = {"resourceType": "Patient", "id": "p1"}
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Unknown search parameter 'foo'"}],
}


def test_backoff_is_exponential_full_jitter_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=3.0)
    monkeypatch.setattr("random.uniform", lambda low, high: high)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    monkeypatch.setattr("random.uniform", lambda low, high: low)
    assert policy.delay(4) == 0.0


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    policy = RetryPolicy(retry_after_max=120.0)
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=3600.0) == 120.0


def test_parse_retry_after_forms() -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_429_with_retry_after_seconds(client: FhirClient, mock: respx.MockRouter, sleeps: list[float]) -> None:
    route = mock.get(f"{BASE}/Patient/p1").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json=PATIENT)]
    )
    assert client.read("Patient", "p1") == PATIENT
    assert route.call_count == 2
    assert sleeps == [7.0]


def test_429_with_retry_after_http_date_uses_server_clock(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float]
) -> None:
    # The server's Date header is the reference, so a skewed local clock does not matter.
    throttled = httpx.Response(
        429,
        headers={"Retry-After": "Wed, 21 Oct 2015 07:28:07 GMT", "Date": "Wed, 21 Oct 2015 07:28:00 GMT"},
    )
    mock.get(f"{BASE}/Patient/p1").mock(side_effect=[throttled, httpx.Response(200, json=PATIENT)])
    client.read("Patient", "p1")
    assert sleeps == [7.0]


def test_retry_after_http_date_far_ahead_is_capped(mock: respx.MockRouter, sleeps: list[float]) -> None:
    throttled = httpx.Response(503, headers={"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"})
    mock.get(f"{BASE}/Patient/p1").mock(side_effect=[throttled, httpx.Response(200, json=PATIENT)])
    with FhirClient(BASE, retry=RetryPolicy(sleep=sleeps.append, retry_after_max=60.0)) as client:
        client.read("Patient", "p1")
    assert sleeps == [60.0]


def test_503_burst_then_success(client: FhirClient, mock: respx.MockRouter, sleeps: list[float]) -> None:
    route = mock.get(f"{BASE}/Patient/p1").mock(
        side_effect=[httpx.Response(503)] * 3 + [httpx.Response(200, json=PATIENT)]
    )
    assert client.read("Patient", "p1")["id"] == "p1"
    assert route.call_count == 4
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps, start=1):
        assert 0.0 <= delay <= 0.5 * 2 ** (attempt - 1)


def test_exhausted_retries_raise_temporary_error_with_attempts(mock: respx.MockRouter, sleeps: list[float]) -> None:
    route = mock.get(f"{BASE}/Patient/p1").mock(return_value=httpx.Response(502, json=OUTCOME))
    client = FhirClient(BASE, retry=RetryPolicy(max_attempts=3, sleep=sleeps.append))
    with client, pytest.raises(FhirTemporaryError) as caught:
        client.read("Patient", "p1")
    error = caught.value
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert error.attempts == 3
    assert error.status_code == 502
    assert error.url == f"{BASE}/Patient/p1"
    assert "gave up after 3 attempts" in str(error)
    assert "Unknown search parameter 'foo'" in str(error)


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("read timed out"), httpx.ConnectTimeout("connect timed out")], ids=type
)
def test_timeouts_are_retried(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float], exc: httpx.TimeoutException
) -> None:
    route = mock.get(f"{BASE}/Patient/p1").mock(side_effect=[exc, httpx.Response(200, json=PATIENT)])
    assert client.read("Patient", "p1") == PATIENT
    assert route.call_count == 2
    assert len(sleeps) == 1


def test_timeouts_exhausted_report_timeout(mock: respx.MockRouter, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/Patient/p1").mock(side_effect=httpx.ReadTimeout("read timed out"))
    client = FhirClient(BASE, retry=RetryPolicy(max_attempts=2, sleep=sleeps.append))
    with client, pytest.raises(FhirTemporaryError, match="timed out") as caught:
        client.read("Patient", "p1")
    assert caught.value.status_code is None
    assert caught.value.attempts == 2
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize(
    "exc",
    [httpx.RemoteProtocolError("peer closed connection"), httpx.ReadError("connection reset by peer")],
    ids=type,
)
def test_connection_reset_is_retried(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float], exc: httpx.TransportError
) -> None:
    route = mock.get(f"{BASE}/Patient/p1").mock(side_effect=[exc, exc, httpx.Response(200, json=PATIENT)])
    assert client.read("Patient", "p1") == PATIENT
    assert route.call_count == 3
    assert len(sleeps) == 2


def test_truncated_json_body_is_retried(client: FhirClient, mock: respx.MockRouter, sleeps: list[float]) -> None:
    truncated = httpx.Response(200, content=b'{"resourceType": "Patient", "id": "p1", "name": [{"fam')
    route = mock.get(f"{BASE}/Patient/p1").mock(side_effect=[truncated, httpx.Response(200, json=PATIENT)])
    assert client.read("Patient", "p1") == PATIENT
    assert route.call_count == 2
    assert len(sleeps) == 1


def test_truncated_json_body_every_time_is_temporary(mock: respx.MockRouter, sleeps: list[float]) -> None:
    mock.get(f"{BASE}/Patient/p1").mock(return_value=httpx.Response(200, content=b'{"resourceType": "Pat'))
    client = FhirClient(BASE, retry=RetryPolicy(max_attempts=2, sleep=sleeps.append))
    with client, pytest.raises(FhirTemporaryError, match="not valid JSON"):
        client.read("Patient", "p1")


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(400, FhirFatalError), (403, FhirAuthError), (404, FhirNotFound), (410, FhirNotFound), (422, FhirFatalError)],
)
def test_client_errors_are_fatal_without_retry(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float], status: int, error_class: type[Exception]
) -> None:
    route = mock.get(f"{BASE}/Patient/p1").mock(return_value=httpx.Response(status, json=OUTCOME))
    with pytest.raises(error_class) as caught:
        client.read("Patient", "p1")
    assert route.call_count == 1
    assert sleeps == []
    assert not isinstance(caught.value, FhirTemporaryError)
    assert caught.value.status_code == status  # type: ignore[attr-defined]


def test_operation_outcome_diagnostics_in_message(client: FhirClient, mock: respx.MockRouter) -> None:
    long_outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "Unknown search parameter 'foo'"},
            {"severity": "error", "code": "invalid", "details": {"text": "x" * 1000}},
        ],
    }
    mock.get(f"{BASE}/Encounter").mock(return_value=httpx.Response(400, json=long_outcome))
    with pytest.raises(FhirFatalError) as caught:
        list(client.search_pages("Encounter", {"foo": "1"}))
    message = str(caught.value)
    assert "400 Bad Request" in message
    assert "Unknown search parameter 'foo'; xxx" in message
    assert message.count("x") < 320  # diagnostics are capped at 300 characters


def test_auth_error_never_echoes_body(client: FhirClient, mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/Patient/p1").mock(
        return_value=httpx.Response(403, json={**OUTCOME, "issue": [{"diagnostics": "token abc123 lacks scope"}]})
    )
    with pytest.raises(FhirAuthError) as caught:
        client.read("Patient", "p1")
    assert "abc123" not in str(caught.value)
    assert "scopes" in str(caught.value)


def test_not_implemented_is_fatal(client: FhirClient, mock: respx.MockRouter) -> None:
    route = mock.get(f"{BASE}/Group/g1/$export").mock(return_value=httpx.Response(501))
    with pytest.raises(FhirFatalError):
        client.get_json("Group/g1/$export")
    assert route.call_count == 1


def test_html_from_a_proxy_is_unreadable_with_hint(client: FhirClient, mock: respx.MockRouter) -> None:
    # Retried like a cut-off body (a gateway's error page passes); still HTML after that: the hint.
    mock.get(f"{BASE}/Patient/p1").mock(
        return_value=httpx.Response(200, text="<html>Login</html>", headers={"Content-Type": "text/html"})
    )
    with pytest.raises(FhirUnreadablePage, match="login proxy"):
        client.read("Patient", "p1")


def test_post_is_not_retried_on_plain_503(client: FhirClient, mock: respx.MockRouter, sleeps: list[float]) -> None:
    route = mock.post(f"{BASE}/Subscription").mock(return_value=httpx.Response(503))
    with pytest.raises(FhirTemporaryError) as caught:
        client.post_json("Subscription", {"resourceType": "Subscription"})
    assert route.call_count == 1
    assert caught.value.attempts == 1
    assert sleeps == []


def test_post_is_retried_on_429_with_retry_after(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float]
) -> None:
    created = {"resourceType": "Subscription", "id": "s1"}
    route = mock.post(f"{BASE}/Subscription").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(201, json=created)]
    )
    assert client.post_json("Subscription", {"resourceType": "Subscription"}) == created
    assert route.call_count == 2
    assert sleeps == [2.0]


def test_post_is_retried_when_connection_never_opened(
    client: FhirClient, mock: respx.MockRouter, sleeps: list[float]
) -> None:
    route = mock.post(f"{BASE}/Subscription").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json={"id": "s1"})]
    )
    assert client.post_json("Subscription", {"resourceType": "Subscription"}) == {"id": "s1"}
    assert route.call_count == 2


def test_post_read_timeout_is_not_retried(client: FhirClient, mock: respx.MockRouter) -> None:
    # The server may have created the resource already: a retry could duplicate it.
    route = mock.post(f"{BASE}/Subscription").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(FhirTemporaryError):
        client.post_json("Subscription", {"resourceType": "Subscription"})
    assert route.call_count == 1


def test_logs_path_and_status_but_never_query_values(
    client: FhirClient, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    mock.get(f"{BASE}/Patient").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"resourceType": "Bundle"})]
    )
    with caplog.at_level(logging.DEBUG, logger="discharge_bridge.fhir"):
        list(client.search_pages("Patient", {"name": "Smith", "birthdate": "1938-05-01"}))
    assert "GET /fhir/Patient -> 503; attempt 1/5, retrying in" in caplog.text
    assert "Smith" not in caplog.text
    assert "1938" not in caplog.text


def test_error_messages_mask_patient_bearing_query_values() -> None:
    from discharge_bridge.fhir import FhirTemporaryError

    url = "http://ehr/fhir/Condition?patient=p1%2Cp2&_count=50&name=Ivanova"
    err = FhirTemporaryError(f"GET {url} failed (ReadTimeout)", url=url)
    assert "p1" not in str(err) and "Ivanova" not in str(err) and "Ivanova" not in err.url
    assert "patient=***" in str(err) and "_count=50" in str(err) and "name=***" in err.url


def test_logged_paths_mask_resource_ids() -> None:
    from discharge_bridge.fhir._exceptions import loggable_path

    assert loggable_path("/fhir/Patient/MRN-12345") == "/fhir/Patient/{id}"
    assert loggable_path("/fhir/Encounter/e1/_history/3") == "/fhir/Encounter/{id}/_history/{id}"
    assert loggable_path("/fhir/Encounter") == "/fhir/Encounter"
    assert loggable_path("/fhir/Patient/$export") == "/fhir/Patient/$export"
