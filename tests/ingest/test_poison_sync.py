"""Poison pages: one bad entry costs its own dead letter, never its neighbours or the source.

A scripted EHR served by respx (page size 2, offset next links, ``_lastUpdated`` and ``_sort``
honoured) and the real EHR simulator (``sekmet-fhir``, slow).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
import respx
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.fhir import FhirClient, RetryPolicy
from discharge_bridge.fhir.fields import parse_instant
from discharge_bridge.ingest.models import ClinicalSnapshot, DeadLetter, EncounterSnapshot, PatientSnapshot
from discharge_bridge.ingest.poll import sync_source
from discharge_bridge.sources.models import Source, SyncStatus
from tests.support.fakefhir import condition, encounter, patient
from tests.support.sekmet import SekmetServer

BASE = "http://poison.ehr.test/fhir"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _stamp(n: int) -> str:
    return (T0 + timedelta(seconds=n)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ScriptedEhr:
    """Resources filed by the type a search finds them under, served as stored (even without a type)."""

    def __init__(self, page_size: int = 2) -> None:
        self.page_size = page_size
        self.filed: dict[tuple[str, str], tuple[int, Any]] = {}  # (type, key) -> (stamp second, resource)
        self.tick = 0

    def put(self, filed_as: str, key: str, resource: Any) -> None:
        self.tick += 1
        if isinstance(resource, dict):
            resource = copy.deepcopy(resource)
            previous = self.filed.get((filed_as, key))
            before = previous[1] if previous is not None and isinstance(previous[1], dict) else {}
            version = int(before.get("meta", {}).get("versionId", "0")) + 1
            resource["meta"] = {"versionId": str(version), "lastUpdated": _stamp(self.tick)}
        self.filed[(filed_as, key)] = (self.tick, resource)

    def _search(self, rtype: str, params: dict[str, str]) -> list[tuple[int, Any]]:
        hits = [(tick, res) for (t, _), (tick, res) in self.filed.items() if t == rtype]
        since = params.get("_lastUpdated")
        if since:
            bound = datetime.fromisoformat(since[2:].replace("Z", "+00:00"))
            hits = [
                (tick, r)
                for tick, r in hits
                if (
                    T0 + timedelta(seconds=tick) > bound if since[:2] == "gt" else T0 + timedelta(seconds=tick) >= bound
                )
            ]
        if "_id" in params:
            wanted = set(params["_id"].split(","))
            hits = [(tick, r) for tick, r in hits if isinstance(r, dict) and r.get("id") in wanted]
        if "patient" in params or "subject" in params:
            wanted = {f"Patient/{p}" for p in (params.get("patient") or params["subject"]).split(",")}
            field = "patient" if rtype == "RelatedPerson" else "subject"
            hits = [
                (tick, r) for tick, r in hits if isinstance(r, dict) and (r.get(field) or {}).get("reference") in wanted
            ]
        if "status" in params:
            hits = [(tick, r) for tick, r in hits if isinstance(r, dict) and r.get("status") == params["status"]]
        return sorted(hits, key=lambda hit: hit[0])

    def handler(self, request: httpx.Request) -> httpx.Response:
        rtype = request.url.path.removeprefix("/fhir/")
        params = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        offset = int(params.pop("_offset", "0"))
        hits = self._search(rtype, params)
        page = [res for _, res in hits[offset : offset + self.page_size]]
        entries: list[dict[str, Any]] = [{"resource": r, "search": {"mode": "match"}} for r in page]
        if params.get("_include") == "Encounter:subject":
            refs = {(r.get("subject") or {}).get("reference") for r in page if isinstance(r, dict)}
            for (t, key), (_, res) in self.filed.items():
                if t == "Patient" and f"Patient/{key}" in refs:
                    entries.append({"resource": res, "search": {"mode": "include"}})
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        if offset + self.page_size < len(hits):
            following = urlencode({**params, "_offset": str(offset + self.page_size)})
            bundle["link"] = [{"relation": "next", "url": f"http://localhost:8090/fhir/{rtype}?{following}"}]
        date = (T0 + timedelta(seconds=self.tick)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        return httpx.Response(200, json=bundle, headers={"date": date})


@pytest.fixture
def ehr() -> Iterator[ScriptedEhr]:
    scripted = ScriptedEhr()
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="poison.ehr.test").mock(side_effect=scripted.handler)
        yield scripted


def _sync(engine: Engine, settings: Settings) -> Any:
    client = FhirClient(BASE, retry=RetryPolicy(sleep=lambda s: None))
    with client:
        return sync_source("city", engine=engine, settings=settings, client=client)


def _source(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_source(session, name="city", hospital="City Hospital", base_url=BASE, timezone="Europe/Moscow")


def _encounter_ids(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return set(session.exec(select(EncounterSnapshot.fhir_id)).all())


def _letters(engine: Engine) -> dict[str | None, DeadLetter]:
    with Session(engine) as session:
        return {d.fhir_id: d for d in session.exec(select(DeadLetter))}


def _cursor(engine: Engine, stream: str = "Encounter") -> str | None:
    with Session(engine) as session:
        return session.exec(select(Source)).one().cursors.get(stream)


def _without(resource: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != key}


POISON = {
    "no resourceType": (_without(encounter("bad", "p3"), "resourceType"), "resourceType: missing", "bad"),
    "unknown resourceType": ({**encounter("bad", "p3"), "resourceType": "Encountr"}, "resourceType: ", "bad"),
    "class code a number": (encounter("bad", "p3", **{"class": {"code": 42}}), "Encounter.class", "bad"),
    "period a list": (encounter("bad", "p3", period=[]), "Encounter.period", "bad"),
    "not an object": ("garbage", "entry is not a JSON object", None),
}


@pytest.mark.parametrize("poison", POISON.values(), ids=POISON.keys())
def test_a_poison_entry_on_page_two_costs_only_itself(
    engine: Engine, settings: Settings, ehr: ScriptedEhr, poison: tuple[Any, str, str | None]
) -> None:
    bad, reason, bad_id = poison
    _source(engine)
    for pid in ("p1", "p2", "p3"):
        ehr.put("Patient", pid, patient(pid))
    ehr.put("Encounter", "e1", encounter("e1", "p1"))
    ehr.put("Encounter", "e2", encounter("e2", "p2"))
    ehr.put("Encounter", "bad", bad)  # page 2, beside a good admission
    ehr.put("Encounter", "e3", encounter("e3", "p3"))

    first = _sync(engine, settings)

    assert first.status == SyncStatus.ok, first.error
    assert _encounter_ids(engine) == {"e1", "e2", "e3"}  # the neighbour of the poison arrived
    assert first.dead_letters == 1
    (letter,) = _letters(engine).values()
    assert letter.error.startswith(reason) and letter.fhir_id == bad_id
    assert _cursor(engine) == _stamp(7)  # past e3, the newest Encounter: the page is done

    # the EHR fixes the entry: the next pass takes it, nothing else changes
    ehr.put("Encounter", "bad", encounter("bad", "p3"))
    second = _sync(engine, settings)
    assert second.status == SyncStatus.ok, second.error
    assert _encounter_ids(engine) == {"e1", "e2", "e3", "bad"}
    assert (second.created, second.dead_letters) == (1, 0)
    assert _cursor(engine) == _stamp(8)


def test_poison_in_the_fact_streams_is_dead_lettered_not_dropped(
    engine: Engine, settings: Settings, ehr: ScriptedEhr
) -> None:
    _source(engine)
    ehr.put("Patient", "p1", patient("p1"))
    ehr.put("Encounter", "e1", encounter("e1", "p1"))
    assert _sync(engine, settings).status == SyncStatus.ok

    ehr.put("Condition", "c-bad", {**condition("c-bad", "p1"), "subject": {"reference": 42}})
    ehr.put("Condition", "c-untyped", _without(condition("c-untyped", "p1"), "resourceType"))
    ehr.put("Condition", "c-good", condition("c-good", "p1"))
    ehr.put("Condition", "c-stranger", condition("c-stranger", "nobody"))  # not a patient we follow
    second = _sync(engine, settings)

    assert second.status == SyncStatus.ok, second.error
    with Session(engine) as session:
        facts = set(session.exec(select(ClinicalSnapshot.fhir_id)).all())
    assert facts == {"c-good"}
    letters = _letters(engine)
    assert set(letters) == {"c-bad", "c-untyped"}
    assert letters["c-bad"].error == "Condition.subject.reference: 42 is not a string"
    assert letters["c-untyped"].error == "resourceType: missing"
    assert _cursor(engine, "Condition") == _stamp(6)


def test_a_poison_patient_include_leaves_its_admission_for_the_fixed_copy(
    engine: Engine, settings: Settings, ehr: ScriptedEhr
) -> None:
    _source(engine)
    ehr.put("Patient", "p1", patient("p1"))
    ehr.put("Patient", "p2", patient("p2", birthDate="1950-13-45"))
    ehr.put("Encounter", "e1", encounter("e1", "p1"))
    ehr.put("Encounter", "e2", encounter("e2", "p2"))

    first = _sync(engine, settings)

    assert first.status == SyncStatus.ok, first.error
    assert _encounter_ids(engine) == {"e1", "e2"}
    assert _letters(engine)["p2"].error == "Patient.birthDate: '1950-13-45' is not a valid FHIR date"

    ehr.put("Patient", "p2", patient("p2", birthDate="1950-12-15"))
    ehr.put("Encounter", "e2", encounter("e2", "p2", status="onleave"))  # a change brings the include again
    assert _sync(engine, settings).status == SyncStatus.ok
    with Session(engine) as session:
        births = dict(session.exec(select(PatientSnapshot.fhir_id, PatientSnapshot.birth_date)).all())
    assert births == {"p1": "1940-03-02", "p2": "1950-12-15"}


# -- the real EHR simulator ------------------------------------------------------------------------------

V3 = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _sim_encounter(eid: str, pid: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "in-progress",
        "class": {"system": V3, "code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": "2026-11-20T09:30:00+03:00"},
        **extra,
    }


@pytest.mark.slow
def test_a_page_of_every_bad_kind_from_the_simulator(sekmet: SekmetServer, engine: Engine, settings: Settings) -> None:
    """The simulator (validation off) stores what it is sent; the resourceType must match the URL there,
    so the untyped and unknown types are covered by the scripted EHR and the file source instead."""
    settings = settings.model_copy(update={"sync_page_size": 4, "sync_overlap_seconds": 5})
    good = [
        {"resourceType": "Patient", "id": "sp1", "birthDate": "1938"},
        {"resourceType": "Patient", "id": "sp2", "birthDate": "1940-03-02", "name": "Petrova Olga"},
        _sim_encounter("se1", "sp1"),
        _sim_encounter("se2", "sp2", period={"start": "2026-11-21T10:00:00"}),
        _sim_encounter("se3", "sp1", **{"class": "IMP"}),
    ]
    bad = {  # id -> the field its dead letter names
        "sp-birth": ({"resourceType": "Patient", "id": "sp-birth", "birthDate": "1950-13-45"}, "Patient.birthDate"),
        "se-start": (_sim_encounter("se-start", "sp1", period={"start": "not-a-date"}), "Encounter.period.start"),
        "se-status": (_sim_encounter("se-status", "sp1", status="admitted"), "Encounter.status"),
        "se-subject": (_sim_encounter("se-subject", "sp1", subject={"reference": 42}), "Encounter.subject"),
        "se-period": (_sim_encounter("se-period", "sp1", period=[{"start": "2026-11-20"}]), "Encounter.period"),
    }
    for resource in good:
        sekmet.put(resource)
    for resource, _ in bad.values():
        sekmet.put(resource)
    sekmet.put(_sim_encounter("se-birth", "sp-birth"))  # a good admission of the patient with the bad date
    with session_scope(engine) as session:
        add_source(session, name="sim", hospital="Simulated General", base_url=sekmet.base_url)

    first = sync_source("sim", engine=engine, settings=settings)

    assert first.status == SyncStatus.ok, first.error
    assert _encounter_ids(engine) == {"se1", "se2", "se3", "se-birth"}
    letters = _letters(engine)
    assert set(letters) == set(bad)
    for fhir_id, (_, field) in bad.items():
        assert letters[fhir_id].error.startswith(field), letters[fhir_id].error
    on_server = sekmet.get("Encounter", _count=100)["entry"]
    newest = max(parse_instant(entry["resource"]["meta"]["lastUpdated"]) for entry in on_server)
    assert parse_instant(_cursor(engine)) == newest  # past every Encounter, the bad ones too

    # the hospital fixes two of them; the next pass takes them and the rest only count again
    sekmet.put({"resourceType": "Patient", "id": "sp-birth", "birthDate": "1950-12-15"})
    sekmet.put(_sim_encounter("se-status", "sp1", status="arrived"))
    sekmet.put(_sim_encounter("se-birth", "sp-birth", status="onleave"))
    time.sleep(1.1)  # let the server clock pass the newest lastUpdated (as in test_sekmet_sync)
    second = sync_source("sim", engine=engine, settings=settings)
    assert second.status == SyncStatus.ok, second.error
    assert {"se-status", "se-birth"} <= _encounter_ids(engine)
    with Session(engine) as session:
        assert session.exec(select(PatientSnapshot.birth_date).where(PatientSnapshot.fhir_id == "sp-birth")).one() == (
            "1950-12-15"
        )
