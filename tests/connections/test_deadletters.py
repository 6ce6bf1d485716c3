"""Dead letters as hospital IT reads them: the field at fault read from every reason ingest writes, and
the stored record shown without who it is about."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge import keyset
from discharge_bridge.config import Settings
from discharge_bridge.connections.deadletters import WITHHELD, Fault, fault_of, letter_detail, withhold_identity
from discharge_bridge.connections.service import add_source
from discharge_bridge.connections.status import DeadLetterNotFound
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import DeadLetter
from discharge_bridge.ingest.poll import sync_source
from discharge_bridge.ingest.store import record_dead_letter
from discharge_bridge.sources.models import SourceMode
from tests.support.factories import api_client, make_source

POISON = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "poison"


@pytest.mark.parametrize(
    ("reason", "fault"),
    [
        ("Patient.birthDate: '1950-13-45' is not a valid FHIR date", Fault("Patient.birthDate")),
        ("Encounter.period: end is before start", Fault("Encounter.period")),
        ("Encounter.subject.reference: 5 is not a string", Fault("Encounter.subject.reference")),
        ("Encounter has no subject reference to a Patient", Fault("Encounter.subject")),
        ("Encounter has no status", Fault("Encounter.status")),
        ("Patient has no id", Fault("Patient.id")),
        ("Observation id is not a valid FHIR id", Fault("Observation.id")),
        ("resourceType: 'Foo' is not an R4 resource type", Fault("resourceType")),
        ("resourceType: missing", Fault("resourceType")),
        ("Encounter.ndjson line 7: not JSON", Fault(None, "Encounter.ndjson", 7)),
        ("Encounter.broken.ndjson line 2: unexpected character", Fault(None, "Encounter.broken.ndjson", 2)),
        ("entry is not a JSON object", Fault(None)),
        ("webhook notification: not a Bundle", Fault(None)),
    ],
)
def test_the_field_at_fault_is_read_from_the_reason(reason: str, fault: Fault) -> None:
    assert fault_of(reason) == fault


@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
def test_every_poison_record_names_the_field_the_fixture_expects(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """The real reasons of a real pass, not only the shapes above: fhir_fixtures/poison says which field."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "resources.ndjson").write_bytes((POISON / "resources.ndjson").read_bytes())
    with session_scope(engine) as session:
        add_source(session, name="files", hospital="Files", base_url=str(folder), mode=SourceMode.file)
    sync_source("files", engine=engine, settings=settings)
    expected = json.loads((POISON / "expected.json").read_text())["dead_letters"]
    with Session(engine) as session:
        found = {d.fhir_id: fault_of(d.error).field for d in session.exec(select(DeadLetter))}
    # The fixture names the element; the reason may name a part of it (Encounter.subject.reference).
    assert set(found) == set(expected)
    for fhir_id, field in expected.items():
        assert (found[fhir_id] or "").startswith(field), (fhir_id, found[fhir_id])


def test_identity_is_withheld_at_any_depth_and_the_shape_is_kept() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "text": {"status": "generated", "div": "<div>Ivanova Maria, born 1950</div>"},
        "name": [{"family": "Ivanova", "given": ["Maria"]}],
        "birthDate": "1950-13-45",
        "identifier": [{"system": "urn:mrn", "value": "MRN-1", "type": {"text": "MR"}}],
        "telecom": [{"system": "phone", "value": "+7 900"}],
        "address": [{"city": "Moscow"}],
        "contact": [{"name": {"family": "Ivanov"}, "telecom": [{"value": "+7 901"}]}],
        "photo": [{"data": "aGVsbG8="}],
        "gender": "female",
        "extension": [{"url": "http://x/household", "valueInteger": 1}],
        "link": [{"other": {"reference": "Patient/p2"}, "type": "replaced-by"}],
    }
    kept, withheld = withhold_identity(patient)
    shown = json.dumps(kept, ensure_ascii=False)
    for personal in ("Ivanova", "Maria", "1950", "MRN-1", "+7 90", "Moscow", "Ivanov", "aGVsbG8"):
        assert personal not in shown, personal
    assert kept["identifier"] == [{"system": "urn:mrn", "type": {"text": "MR"}, "value": WITHHELD}]
    assert kept["gender"] == "female" and kept["extension"] == patient["extension"] and kept["link"] == patient["link"]
    assert set(withheld) == {
        "text",
        "name",
        "birthDate",
        "identifier[0].value",
        "telecom",
        "address",
        "contact",
        "photo",
    }
    encounter = {"resourceType": "Encounter", "subject": {"reference": "Patient/p1", "identifier": {"value": "MRN-1"}}}
    kept, withheld = withhold_identity(encounter)
    assert kept["subject"] == {"reference": "Patient/p1", "identifier": {"value": WITHHELD}}
    assert withheld == ["subject.identifier.value"]
    coded = {"code": {"text": "Dementia", "coding": [{"code": "F03"}]}}  # a CodeableConcept's text is no narrative
    assert withhold_identity(coded) == (coded, [])


@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
def test_a_letters_detail_is_found_in_its_hospitals_only(engine: Engine) -> None:
    with session_scope(engine) as session:
        mine, other = make_source(session, "mine"), make_source(session, "other")
        assert mine.id is not None and other.id is not None
        record_dead_letter(session, mine.id, {"resourceType": "Patient", "id": "p", "name": [{"text": "X Y"}]}, "bad")
        record_dead_letter(session, other.id, "not json at all", "Encounter.ndjson line 1: not JSON")
        letters = {d.source_id: d.id for d in session.exec(select(DeadLetter))}
        assert None not in letters.values()
        detail = letter_detail(session, letters[mine.id] or 0, source_ids=[mine.id])
        assert detail.source.name == "mine" and detail.record is not None and "X Y" not in detail.record
        assert orjson.loads(detail.record)["name"] == WITHHELD and detail.withheld == ("name",)
        with pytest.raises(DeadLetterNotFound):
            letter_detail(session, letters[other.id] or 0, source_ids=[mine.id])
        text = letter_detail(session, letters[other.id] or 0, source_ids=None)
        assert text.record is None and text.record_chars == len("not json at all")
        assert text.row.fault == Fault(None, "Encounter.ndjson", 1)


def test_the_dead_letters_api_pages_by_cursor_newest_first_each_letter_once(engine: Engine, settings: Settings) -> None:
    """A source with many dead letters is read page by page (``next_after``), never by OFFSET."""
    with session_scope(engine) as session:
        source_id = make_source(session).id or 0
        other_id = make_source(session, "north").id or 0
        for n in range(7):
            with time_machine.travel(datetime(2026, 11, 2, 8, n % 3, tzinfo=UTC), tick=False):  # ties on last_seen
                record_dead_letter(session, source_id, {"resourceType": "Encounter", "id": f"e{n}"}, "bad")
        record_dead_letter(session, other_id, {"resourceType": "Encounter", "id": "x"}, "bad")
    client = api_client(settings)
    whole = client.get("/api/v1/sources/city/deadletters").json()
    assert whole["next_after"] is None and len(whole["items"]) == 7
    seen: list[str] = []
    url = "/api/v1/sources/city/deadletters?limit=3"
    while url:
        body = client.get(url).json()
        seen += [d["fhir_id"] for d in body["items"]]
        url = body["next_after"] and f"/api/v1/sources/city/deadletters?limit=3&after={body['next_after']}"
    assert seen == [d["fhir_id"] for d in whole["items"]] and len(set(seen)) == 7
    assert [d["last_seen"][:16] for d in whole["items"]] == sorted(
        (d["last_seen"][:16] for d in whole["items"]), reverse=True
    )
    north_letter = client.get("/api/v1/sources/north/deadletters").json()["items"][0]["id"]
    foreign = client.get(f"/api/v1/sources/city/deadletters?after={keyset.encode('letters', north_letter)}")
    assert foreign.status_code == 422 and ["query", "after"] in [e["loc"] for e in foreign.json()["detail"]]
