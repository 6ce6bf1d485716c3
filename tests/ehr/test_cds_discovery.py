"""CDS Hooks discovery: the response validates against a JSON Schema written from the spec's Discovery section."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.ehr.cds.discovery import ENCOUNTER_DISCHARGE, PATIENT_VIEW

NON_EMPTY = {"type": "string", "minLength": 1}
# CDS Hooks 2.0, Discovery: {"services": [...]}; each service: hook, description, id REQUIRED; title
# RECOMMENDED; prefetch OPTIONAL (key -> FHIR query string); usageRequirements OPTIONAL (2.0). Optional
# JSON elements are omitted, never null or empty ("Null and empty JSON elements").
DISCOVERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["services"],
    "properties": {
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["hook", "description", "id"],
                "properties": {
                    "hook": NON_EMPTY,
                    "title": NON_EMPTY,
                    "description": NON_EMPTY,
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9._~-]+$"},  # a URL path segment
                    "prefetch": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {"type": "string", "minLength": 1},
                    },
                    "usageRequirements": NON_EMPTY,
                    "extension": {"type": "object", "minProperties": 1},
                },
            },
        },
        "extension": {"type": "object", "minProperties": 1},
    },
}

SPEC_EXAMPLE: dict[str, Any] = {
    "services": [
        {
            "hook": "patient-view",
            "title": "Static CDS Service Example",
            "description": "An example of a CDS Service that returns a static set of cards",
            "id": "static-patient-greeter",
            "prefetch": {"patientToGreet": "Patient/{{context.patientId}}"},
        }
    ]
}


def test_the_schema_accepts_the_spec_example_and_refuses_what_the_spec_forbids() -> None:
    jsonschema.validate(SPEC_EXAMPLE, DISCOVERY_SCHEMA)
    for breaking in ("description", "id", "hook"):
        broken = copy.deepcopy(SPEC_EXAMPLE)
        del broken["services"][0][breaking]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, DISCOVERY_SCHEMA)
    nulled = copy.deepcopy(SPEC_EXAMPLE)
    nulled["services"][0]["title"] = None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(nulled, DISCOVERY_SCHEMA)


@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
def test_discovery_is_open_and_lists_both_services_with_their_prefetch(settings: Settings) -> None:
    response = TestClient(create_app(settings)).get("/cds-services")  # no JWT, no sign-in
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    jsonschema.validate(body, DISCOVERY_SCHEMA)
    services = {s["id"]: s for s in body["services"]}
    assert set(services) == {PATIENT_VIEW, ENCOUNTER_DISCHARGE}
    assert services[PATIENT_VIEW]["hook"] == "patient-view"
    assert services[ENCOUNTER_DISCHARGE]["hook"] == "encounter-discharge"
    for service in services.values():
        assert service["prefetch"] == {
            "patient": "Patient/{{context.patientId}}",
            "encounter": "Encounter/{{context.encounterId}}",
        }
        assert service["title"] and service["description"] and service["usageRequirements"]
