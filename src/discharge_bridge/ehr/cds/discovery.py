"""The CDS Hooks 2.0 discovery document: our two services, their hooks and prefetch templates.

The EHR reads ``GET {base}/cds-services`` once when hospital IT registers us; the prefetch templates ask
it to send the Patient and the Encounter with each call, so a call never needs to read the EHR back
(``fhirServer`` is never called: service.py works from the prefetch or from our stored snapshots).
"""

from __future__ import annotations

from typing import Any

PATIENT_VIEW = "discharge-bridge-patient-view"
ENCOUNTER_DISCHARGE = "discharge-bridge-encounter-discharge"

PREFETCH = {"patient": "Patient/{{context.patientId}}"}
PREFETCH_WITH_ENCOUNTER = {**PREFETCH, "encounter": "Encounter/{{context.encounterId}}"}

SERVICES: dict[str, dict[str, Any]] = {
    PATIENT_VIEW: {
        "hook": "patient-view",
        "id": PATIENT_VIEW,
        "title": "Social coordination of discharge",
        "description": (
            "When the patient has an open discharge-coordination case: its priority, coordinator, why the "
            "patient was flagged and the next task, with a link to the case."
        ),
        "prefetch": PREFETCH_WITH_ENCOUNTER,
        "usageRequirements": (
            "The EHR's CDS Hooks client is registered per hospital (its JWT issuer and JWK Set URL); "
            "context.patientId and context.encounterId are the ids of that hospital's FHIR server."
        ),
    },
    ENCOUNTER_DISCHARGE: {
        "hook": "encounter-discharge",
        "id": ENCOUNTER_DISCHARGE,
        "title": "Social handoff before discharge",
        "description": (
            "Warns at the discharge order when the social handoff is not complete, barriers to discharge are "
            "open or the handoff's required documents are missing; no card when all is in order."
        ),
        "prefetch": PREFETCH_WITH_ENCOUNTER,
        "usageRequirements": (
            "The EHR's CDS Hooks client is registered per hospital (its JWT issuer and JWK Set URL); "
            "context.encounterId is the admission being discharged."
        ),
    },
}


def discovery() -> dict[str, Any]:
    """``{"services": [...]}`` as the spec's discovery response (a fresh copy each time)."""
    return {"services": [dict(service, prefetch=dict(service["prefetch"])) for service in SERVICES.values()]}
