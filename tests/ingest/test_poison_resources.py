"""A bad resource is a dead letter (or a counted conformance problem), never a failed batch.

Unit level (``normalise``, ``parse_batch``, the conformance ``Sampler``) and a file source with a
page of every kind of bad resource (``fhir_fixtures/poison``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.fhir.fields import zone
from discharge_bridge.ingest import pipeline
from discharge_bridge.ingest.conformance import Sampler, problems
from discharge_bridge.ingest.models import (
    ClinicalSnapshot,
    ConformanceIssue,
    DeadLetter,
    EncounterSnapshot,
    PatientSnapshot,
)
from discharge_bridge.ingest.normalise import UnusableResource, normalise
from discharge_bridge.ingest.pipeline import parse_batch
from discharge_bridge.ingest.poll import sync_source
from discharge_bridge.sources.models import Source, SourceMode, SyncStatus
from tests.support.fakefhir import condition, encounter, patient

MOSCOW = zone("Europe/Moscow")
POISON = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "poison"


def _without(resource: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != key}


# (resource, the start of the dead letter's reason: the field it names)
DEAD = {
    "no resourceType": (_without(encounter("e1", "p1"), "resourceType"), "resourceType: missing"),
    "empty resourceType": ({**encounter("e1", "p1"), "resourceType": ""}, "resourceType: missing"),
    "unknown resourceType": ({**encounter("e1", "p1"), "resourceType": "Encountr"}, "resourceType: 'Encountr'"),
    "numeric resourceType": ({**encounter("e1", "p1"), "resourceType": 7}, "resourceType: 7"),
    "impossible birthDate": (patient("p1", birthDate="1950-13-45"), "Patient.birthDate: '1950-13-45'"),
    "birthDate day out of range": (patient("p1", birthDate="1950-02-30"), "Patient.birthDate"),
    "birthDate as a number": (patient("p1", birthDate=19500101), "Patient.birthDate: 19500101"),
    "birthDate in words": (patient("p1", birthDate="unknown"), "Patient.birthDate"),
    "period.start not a date": (
        encounter("e1", "p1", period={"start": "not-a-date"}),
        "Encounter.period.start: 'not-a-date'",
    ),
    "period.end out of range": (
        encounter("e1", "p1", period={"start": "2026-11-01T09:30:00Z", "end": "2026-11-01T25:00:00Z"}),
        "Encounter.period.end",
    ),
    "period.start overflows the zone": (
        encounter("e1", "p1", period={"start": "0001-01-01T00:00:00+05:00"}),
        "Encounter.period.start",
    ),
    "period.start a number": (encounter("e1", "p1", period={"start": 20261101}), "Encounter.period.start"),
    "period a list": (encounter("e1", "p1", period=[{"start": "2026-11-01T09:30:00Z"}]), "Encounter.period: "),
    "period a string": (encounter("e1", "p1", period="2026-11-01"), "Encounter.period: "),
    "period ends before it starts": (
        encounter("e1", "p1", period={"start": "2026-11-05T09:30:00Z", "end": "2026-11-01T09:30:00Z"}),
        "Encounter.period: end is before start",
    ),
    "status not an R4 code": (encounter("e1", "p1", status="admitted"), "Encounter.status: 'admitted'"),
    "status a number": (encounter("e1", "p1", status=3), "Encounter.status: 3"),
    "class code a number": (encounter("e1", "p1", **{"class": {"code": 42}}), "Encounter.class"),
    "class a number": (encounter("e1", "p1", **{"class": 42}), "Encounter.class: 42"),
    "class code too long": (encounter("e1", "p1", **{"class": {"code": "X" * 40}}), "Encounter.class"),
    "subject reference a number": (
        encounter("e1", "p1", subject={"reference": 42}),
        "Encounter.subject.reference: 42",
    ),
    "subject a string": (encounter("e1", "p1", subject="Patient/p1"), "Encounter.subject: 'Patient/p1'"),
    "subject not a Patient": (encounter("e1", "p1", subject={"reference": "Group/g1"}), "Encounter.subject: "),
    "Condition subject a number": (
        {**condition("c1", "p1"), "subject": {"reference": 7}},
        "Condition.subject.reference: 7",
    ),
    "RelatedPerson patient a list": (
        {"resourceType": "RelatedPerson", "id": "r1", "patient": [{"reference": "Patient/p1"}]},
        "RelatedPerson.patient: ",
    ),
    "id a list, version an object": (
        {**patient("p1"), "id": ["p1"], "meta": {"versionId": {"v": 1}}},
        "Patient has no id",
    ),
    "entry not an object": ("Patient/p1", "entry is not a JSON object"),
}


@pytest.mark.parametrize("case", DEAD.values(), ids=DEAD.keys())
def test_a_bad_value_is_a_dead_letter_naming_its_field(case: tuple[Any, str]) -> None:
    resource, reason = case
    with pytest.raises(UnusableResource) as caught:
        normalise(resource, MOSCOW)
    assert str(caught.value).startswith(reason)

    parsed = parse_batch([patient("good"), resource, encounter("good-e", "good")], tz=MOSCOW, sampler=Sampler(50))

    assert [row.fhir_id for row in parsed.rows] == ["good", "good-e"]
    assert [(payload, text) for payload, text in parsed.rejected] == [(resource, str(caught.value))]


# (resource, path of the conformance problem, what the column holds instead)
USABLE = {
    "meta a string": ({**patient("p1"), "meta": "v1"}, "meta", ("version_id", None)),
    "meta.lastUpdated not an instant": (
        {**patient("p1"), "meta": {"versionId": "2", "lastUpdated": "yesterday"}},
        "meta.lastUpdated",
        ("last_updated", None),
    ),
    "meta.versionId not an id": (
        {**patient("p1"), "meta": {"versionId": "v 1/2"}},
        "meta.versionId",
        ("version_id", None),
    ),
    "name a string": (patient("p1", name="Ivanova Anna"), "Patient.name", ("birth_date", "1940-03-02")),
    "telecom an object": (patient("p1", telecom={"value": "555"}), "Patient.telecom", ("gender", None)),
    "gender not a code": (patient("p1", gender="F" * 20), "Patient.gender", ("gender", None)),
    "location a number": (encounter("e1", "p1", location=5), "Encounter.location", ("ward", None)),
    "extension an object": (
        encounter("e1", "p1", extension={"url": "x"}),
        "Encounter.extension",
        ("status", "in-progress"),
    ),
    "admit source too long": (
        encounter("e1", "p1", hospitalization={"admitSource": {"coding": [{"code": "y" * 80}]}}),
        "Encounter.hospitalization.admitSource",
        ("admit_source", None),
    ),
    "ward label too long": (
        encounter(
            "e1", "p1", location=[{"location": {"display": "W" * 250}, "physicalType": {"coding": [{"code": "wa"}]}}]
        ),
        "Encounter.location.location",
        ("ward", "W" * 200),
    ),
    "planned end not a date": (
        encounter(
            "e1",
            "p1",
            extension=[
                {
                    "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate",
                    "valueDateTime": "soon",
                }
            ],
        ),
        "Encounter.extension(plannedEndDate)",
        ("planned_end", None),
    ),
}


@pytest.mark.parametrize("case", USABLE.values(), ids=USABLE.keys())
def test_a_doubtful_value_the_service_can_live_without_is_a_conformance_problem(
    case: tuple[dict[str, Any], str, tuple[str, Any]],
) -> None:
    resource, path, (column, value) = case

    parsed = parse_batch([resource], tz=MOSCOW)

    assert parsed.rejected == []
    (row,) = parsed.rows
    held = getattr(row, column) if column in ("version_id", "last_updated") else row.columns[column]
    assert held == value
    assert path in {p for _, p, _, _ in parsed.conformance}
    found = [c for c in parsed.conformance if c[1] == path]
    assert all(rtype == resource["resourceType"] and rid == resource["id"] for rtype, _, _, rid in found)
    # the problem names the element and the kind, never the value (patient data)
    assert not any("Ivanova" in problem or "soon" in problem or "yesterday" in problem for _, _, problem, _ in found)


TOLERATED = {
    "partial birth year": patient("p1", birthDate="1938"),
    "partial birth month": patient("p1", birthDate="1938-05"),
    "empty birthDate": patient("p1", birthDate=""),
    "no birthDate": _without(patient("p1"), "birthDate"),
    "zone-less start": encounter("e1", "p1", period={"start": "2026-11-02T10:00:00"}),
    "start without seconds": encounter("e1", "p1", period={"start": "2026-11-02T10:00+03:00"}),
    "start a date": encounter("e1", "p1", period={"start": "2026-11-02", "end": "2026-11-02"}),
    "empty period": encounter("e1", "p1", period={}),
    "empty period.end": encounter("e1", "p1", period={"start": "2026-11-02T10:00:00Z", "end": ""}),
    "class as a bare code": encounter("e1", "p1", **{"class": "IMP"}),
    "R5-shaped class": encounter("e1", "p1", **{"class": [{"coding": [{"code": "IMP"}]}]}),
    "no class": _without(encounter("e1", "p1"), "class"),
    "empty class": encounter("e1", "p1", **{"class": {}}),
    "vendor keys and empty strings": encounter("e1", "p1", vendorField="x", priority={"text": ""}),
    "absolute versioned subject": encounter(
        "e1", "p1", subject={"reference": "http://ehr.example/fhir/Patient/p1/_history/3"}
    ),
    "numeric versionId": {**patient("p1"), "meta": {"versionId": 3, "lastUpdated": "2026-11-01T08:00:00Z"}},
    "zone-less lastUpdated": {**patient("p1"), "meta": {"versionId": "3", "lastUpdated": "2026-11-01T08:00:00"}},
}


@pytest.mark.parametrize("resource", TOLERATED.values(), ids=TOLERATED.keys())
def test_what_real_ehrs_send_is_still_taken_without_complaint(resource: dict[str, Any]) -> None:
    row = normalise(resource, MOSCOW)
    assert row.problems == ()


def test_tolerated_values_read_as_before() -> None:
    assert normalise(patient("p1", birthDate="1938-05"), MOSCOW).columns["birth_date"] == "1938-05"
    stay = normalise(encounter("e1", "p1", period={"start": "2026-11-02T10:00:00"}), MOSCOW).columns
    assert stay["period_start"].isoformat() == "2026-11-02T07:00:00+00:00"  # read in Moscow time
    assert (
        normalise(encounter("e1", "p1", **{"class": [{"coding": [{"code": "ACUTE"}]}]})).columns["class_code"]
        == "ACUTE"
    )
    assert normalise({**patient("p1"), "meta": {"versionId": 3}}).version_id == "3"


def test_an_r4_type_the_service_does_not_keep_is_ignored_not_dead_lettered() -> None:
    parsed = parse_batch([{"resourceType": "Practitioner", "id": "dr1"}, {"resourceType": "OperationOutcome"}])
    assert (parsed.ignored, parsed.rejected, parsed.rows) == (2, [], [])


def test_parse_batch_dead_letters_any_failure_and_logs_no_values(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = pipeline.normalise

    def exploding(resource: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(resource, dict) and resource.get("id") == "boom":
            raise RuntimeError("birth 1950-13-45 broke something")
        return real(resource, *args, **kwargs)

    monkeypatch.setattr(pipeline, "normalise", exploding)
    unserialisable = {**patient("odd"), "extension": [{"url": "x", "valueString": object()}]}
    with caplog.at_level(logging.DEBUG):
        parsed = parse_batch(
            [patient("boom"), patient("ok"), unserialisable, patient("bad", birthDate="1950-13-45")],
            encode=True,
            sampler=Sampler(50),
        )

    assert [row.fhir_id for row in parsed.rows] == ["ok"]
    reasons = {payload["id"]: reason for payload, reason in parsed.rejected}
    assert reasons["boom"] == "unreadable resource: RuntimeError: birth 1950-13-45 broke something"
    assert reasons["odd"].startswith("unreadable resource: TypeError")
    assert reasons["bad"] == "Patient.birthDate: '1950-13-45' is not a valid FHIR date"
    assert "1950-13-45" not in caplog.text
    assert "RuntimeError" in caplog.text


@pytest.mark.parametrize(
    "resource",
    [
        {"id": "x"},
        {"resourceType": None},
        {"resourceType": "Encountr", "id": "x"},
        {"resourceType": ["Encounter"], "id": "x"},
        {"resourceType": "X" * 300, "id": "x"},
        {"resourceType": "Encounter", "id": 5, "period": [], "class": 42, "meta": "v1"},
        {"resourceType": "Patient", "id": "x" * 100, "birthDate": "1950-13-45"},
    ],
)
def test_the_sampler_never_raises(resource: dict[str, Any]) -> None:
    found = Sampler(50).check(resource)
    assert all(len(rtype) <= 64 and (rid is None or len(rid) <= 64) for rtype, _, _, rid in found)


def test_model_validation_problems_never_raise() -> None:
    assert problems({"resourceType": None}) == [("resourceType", "unknown resource type")]
    assert problems({"id": "x"}) == [("resourceType", "unknown resource type")]
    assert problems({"resourceType": "Patient", "id": "p1", "birthDate": "1950-13-45"})  # reported, no raise


# -- a file source -------------------------------------------------------------------------------------


def _expected() -> dict[str, Any]:
    return orjson.loads((POISON / "expected.json").read_bytes())


def _file_source(engine: Engine, folder: Path) -> None:
    with session_scope(engine) as session:
        add_source(
            session, name="files", hospital="File Hospital", base_url=str(folder), mode=SourceMode.file, timezone="UTC"
        )


def _stored_ids(engine: Engine) -> set[str]:
    with Session(engine) as session:
        ids: set[str] = set()
        for model in (PatientSnapshot, EncounterSnapshot, ClinicalSnapshot):
            ids |= set(session.exec(select(model.fhir_id)).all())
    return ids


def test_a_file_page_of_every_bad_kind_stores_the_good_and_dead_letters_the_bad(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(POISON / "resources.ndjson", folder / "resources.ndjson")
    _file_source(engine, folder)
    expected = _expected()

    first = sync_source("files", engine=engine, settings=settings)

    assert first.status == SyncStatus.ok, first.error
    assert first.dead_letters == len(expected["dead_letters"])
    assert _stored_ids(engine) == set(expected["stored"])
    with Session(engine) as session:
        letters = {d.fhir_id: d for d in session.exec(select(DeadLetter))}
        issues = {(i.path, i.example_id) for i in session.exec(select(ConformanceIssue))}
        stamp = session.exec(select(EncounterSnapshot).where(EncounterSnapshot.fhir_id == "poison-stamp")).one()
        source = session.exec(select(Source)).one()
    assert set(letters) == set(expected["dead_letters"])
    for fhir_id, field in expected["dead_letters"].items():
        assert letters[fhir_id].error.startswith(field), (fhir_id, letters[fhir_id].error)
        assert orjson.loads(letters[fhir_id].payload)["id"] == fhir_id  # the payload is kept for replay
    assert letters["poison-birth"].error == "Patient.birthDate: '1950-13-45' is not a valid FHIR date"
    for fhir_id, path in expected["conformance"].items():
        assert (path, fhir_id) in issues
    assert stamp.last_updated is None and stamp.version_id == "1"
    assert source.last_error is None

    # the next pass is fine: the same bad payloads only count again, no row is new (resources
    # without meta.versionId are rewritten on every pass of a file source: nothing says they are equal)
    second = sync_source("files", engine=engine, settings=settings)
    assert second.status == SyncStatus.ok, second.error
    assert second.created == 0
    with Session(engine) as session:
        counts = {d.fhir_id: d.count for d in session.exec(select(DeadLetter))}
    assert set(counts.values()) == {2}

    # the hospital fixes the birth date: the patient arrives, its dead letter stays for the replay
    fixed = [
        line if b'"poison-birth"' not in line else line.replace(b"1950-13-45", b"1950-12-15")
        for line in (folder / "resources.ndjson").read_bytes().splitlines()
    ]
    (folder / "resources.ndjson").write_bytes(b"\n".join(fixed) + b"\n")
    third = sync_source("files", engine=engine, settings=settings)
    assert third.status == SyncStatus.ok, third.error
    assert "poison-birth" in _stored_ids(engine)
