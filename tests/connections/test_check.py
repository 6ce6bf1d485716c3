"""The connection check: what it reports for a good server, a lacking one and refused credentials."""

from __future__ import annotations

from typing import Any

import httpx

from discharge_bridge.connections.check import CheckStatus, check_source
from discharge_bridge.fhir import FhirClient, RetryPolicy
from discharge_bridge.sources.models import Source

BASE = "http://ehr.test/fhir"


def _capability(**overrides: Any) -> dict[str, Any]:
    resources = [
        {
            "type": t,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": n} for n in ("patient", "class", "category", "_lastUpdated")],
            **({"searchInclude": ["Encounter:subject"]} if t == "Encounter" else {}),
        }
        for t in ("Patient", "Encounter", "Condition", "Observation", "RelatedPerson")
    ]
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "resource": resources}],
        **overrides,
    }


def _report(capability: dict[str, Any] | None, search_status: int = 200) -> dict[str, tuple[CheckStatus, str]]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=capability) if capability else httpx.Response(404)
        if search_status != 200:
            return httpx.Response(search_status, json={"resourceType": "OperationOutcome", "issue": []})
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "total": 12})

    source = Source(name="city", hospital="City", base_url=BASE)
    client = FhirClient(BASE, transport=httpx.MockTransport(handler), retry=RetryPolicy(sleep=lambda s: None))
    report = check_source(source, client)
    return {item.name: (item.status, item.detail) for item in report.items}


def test_a_complete_server_passes_every_item() -> None:
    items = _report(_capability())
    assert all(status == CheckStatus.ok for status, _ in items.values()), items
    assert "12 encounters" in items["Authentication"][1]


def test_missing_resource_type_and_parameters_are_named() -> None:
    cap = _capability()
    resources = cap["rest"][0]["resource"]
    cap["rest"][0]["resource"] = [r for r in resources if r["type"] != "RelatedPerson"]
    cap["rest"][0]["resource"][2]["searchParam"] = []  # Condition without `patient`
    items = _report(cap)
    assert items["RelatedPerson"][0] == CheckStatus.failed
    assert "grant the client read and search on RelatedPerson" in items["RelatedPerson"][1]
    assert items["Condition"] == (CheckStatus.warning, "search parameters not declared: patient")


def test_wrong_version_and_wrong_url_fail_with_advice() -> None:
    items = _report(_capability(fhirVersion="3.0.2"))
    assert items["FHIR version"][0] == CheckStatus.failed and "R4" in items["FHIR version"][1]
    items = _report(None)
    assert items["CapabilityStatement"][0] == CheckStatus.failed
    assert "Check the base URL" in items["CapabilityStatement"][1]


def test_refused_credentials_fail_the_auth_item() -> None:
    items = _report(_capability(), search_status=401)
    assert items["Authentication"][0] == CheckStatus.failed
    assert "credentials" in items["Authentication"][1]
    items = _report(_capability(), search_status=403)
    assert "scopes" in items["Authentication"][1]
