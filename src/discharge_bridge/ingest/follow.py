"""Which patients the service follows, and reading what risk flagging needs about them.

Shared by the producers so that each keeps exactly what a poll keeps: inpatient stays; of the
patients in them, their Patient, Conditions, Observations (the polled categories), RelatedPersons
and earlier finished stays of any class. Push and backfill see resources a poll would never have
asked for and filter them with the same rules; poll and push fetch the record of a patient seen
for the first time with the same searches.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.fhir import FhirClient, SearchPage
from discharge_bridge.fhir.fields import codings, obj, owner_of
from discharge_bridge.ingest.models import EncounterSnapshot, PatientSnapshot
from discharge_bridge.ingest.store import stored_versions

FACT_STREAMS = ("Condition", "Observation", "RelatedPerson")


# -- what the store already follows ---------------------------------------------------------------


def known_patients(engine: Engine, source_id: int, ids: set[str]) -> set[str]:
    """Those of ``ids`` whose Patient is stored (their record was fetched when first seen)."""
    if not ids:
        return set()
    with session_scope(engine) as session:
        return set(stored_versions(session, source_id, "Patient", sorted(ids)))


def followed_from_store(engine: Engine, source_id: int, classes: Collection[str]) -> set[str]:
    """Patients a poll follows: any stored Patient, and the subjects of stored inpatient stays."""
    with session_scope(engine) as session:
        patients = set(session.exec(select(PatientSnapshot.fhir_id).where(PatientSnapshot.source_id == source_id)))
        stays = select(EncounterSnapshot.patient_fhir_id).where(
            EncounterSnapshot.source_id == source_id,
            col(EncounterSnapshot.class_code).in_(sorted(classes)),
        )
        return patients | set(session.exec(stays.distinct()))


# -- what a poll keeps of a resource it did not ask for ---------------------------------------------


def earlier_stay(encounter: dict[str, Any], followed: Collection[str]) -> bool:
    """A followed patient's ended stay (of a class not polled): readmission within 30 days, ED visits."""
    return encounter.get("status") == "finished" and owner_of(encounter) in followed


def followed_record(resource: dict[str, Any], followed: Collection[str], categories: Collection[str]) -> bool:
    """A Patient or fact of a followed patient; an Observation only in the polled categories."""
    rtype = resource.get("resourceType")
    if (rtype != "Patient" and rtype not in FACT_STREAMS) or owner_of(resource) not in followed:
        return False
    if rtype == "Observation":
        return any(c.get("code") in categories for c in codings(resource.get("category")))
    return True


# -- reading from the EHR ----------------------------------------------------------------------------


def entries(bundle: dict[str, Any]) -> Iterator[tuple[Any, str | None]]:
    """(resource, search mode) of each entry of a searchset Bundle."""
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict) and "resource" in entry:
            search = obj(entry.get("search"))
            yield entry["resource"], search.get("mode")


class Reader:
    """Searches on one source's EHR, counting the bytes received.

    The page writer paces its garbage collections by those bytes (``collection.fewer_young_collections``):
    a producer hands ``take_received()`` over with each page.
    """

    def __init__(self, client: FhirClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.received = 0

    def take_received(self) -> int:
        received, self.received = self.received, 0
        return received

    def pages(self, resource_type: str, params: dict[str, str]) -> Iterator[SearchPage]:
        for page in self.client.search_pages(resource_type, params):
            self.received += page.nbytes
            yield page

    def search_all(self, resource_type: str, params: dict[str, str]) -> list[Any]:
        """Every resource of every page (OperationOutcome entries left out)."""
        found: list[Any] = []
        for page in self.pages(resource_type, params):
            found.extend(res for res, mode in entries(page.bundle) if mode != "outcome")
        return found

    def by_id(self, resource_type: str, ids: Collection[str]) -> list[Any]:
        """The current version of each of ``ids``, by one ``_id`` search."""
        ordered = sorted(ids)
        return self.search_all(resource_type, {"_id": ",".join(ordered), "_count": str(len(ordered))})

    def facts_for(self, patient_ids: Collection[str]) -> list[Any]:
        """Everything risk flagging needs about patients seen for the first time, in batches."""
        found: list[Any] = []
        ids = sorted(patient_ids)
        size, count = self.settings.facts_batch_size, str(self.settings.sync_page_size)
        categories = ",".join(self.settings.observation_categories)
        for start in range(0, len(ids), size):
            batch = ",".join(ids[start : start + size])
            found += self.search_all("Condition", {"patient": batch, "_count": count})
            found += self.search_all("Observation", {"patient": batch, "category": categories, "_count": count})
            found += self.search_all("RelatedPerson", {"patient": batch, "_count": count})
            # Earlier stays of any class: readmission within 30 days, ED visits for LACE. Only
            # ended ones: the current stays are already on this page (asking for all of them
            # again was a tenth of a first pass's traffic).
            found += self.search_all("Encounter", {"patient": batch, "status": "finished", "_count": count})
        return found

    def first_sight(self, resources: list[Any], new_patients: set[str]) -> list[Any]:
        """The record of patients seen for the first time: their Patient when ``resources`` lack it
        (servers that ignore ``_include``), and their facts."""
        included = {r.get("id") for r in resources if isinstance(r, dict) and r.get("resourceType") == "Patient"}
        missing = new_patients - included
        found = self.by_id("Patient", missing) if missing else []
        return found + self.facts_for(new_patients)
