"""Identity for the pages: name, age, sex, MRN by the source's mapping, ward, bed, length of stay."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.sources.models import Source
from discharge_bridge.worklists.people import age_on, identities
from tests.support.factories import make_source, put_encounter

NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)  # the factories admit on 2026-11-01 06:30 UTC
PERSON = {
    "name": [{"family": "Orlova", "given": ["Vera"]}],
    "gender": "female",
    "identifier": [
        {"system": "http://h.example/passport", "value": "45 01 123456"},
        {"system": "http://h.example/mrn", "value": "MRN-5", "type": {"coding": [{"code": "MR"}]}},
    ],
    "telecom": [{"system": "phone", "value": "+7 916 5"}],
}


def _seed(engine: Engine) -> int:
    with session_scope(engine) as session:
        source_id = make_source(session).id or 0
        put_encounter(session, source_id, "adm1", "p1", person=PERSON)
        put_encounter(session, source_id, "adm2", "p2")  # a patient the EHR sent without identity
        row = session.exec(select(EncounterSnapshot).where(EncounterSnapshot.fhir_id == "adm1")).one()
        row.ward, row.bed = "Therapy 3", "3-07"
    return source_id


def test_identity_of_a_list_in_one_call(engine: Engine, settings: Settings) -> None:
    source_id = _seed(engine)
    with session_scope(engine) as session:
        found = identities(
            session, [(source_id, "adm1"), (source_id, "adm2"), (source_id, "gone")], NOW, settings.mappings_dir
        )
    assert set(found) == {(source_id, "adm1"), (source_id, "adm2")}
    vera = found[(source_id, "adm1")]
    assert (vera.name, vera.sex, vera.age, vera.birth_date) == ("Orlova Vera", "female", 86, "1940-03-02")
    assert (vera.mrn, vera.phone, vera.ward, vera.bed) == ("MRN-5", "+7 916 5", "Therapy 3", "3-07")
    assert (vera.admitted_at, vera.length_of_stay_days) == (datetime(2026, 11, 1, 6, 30, tzinfo=UTC), 10)
    unknown = found[(source_id, "adm2")]
    assert (unknown.name, unknown.mrn, unknown.label) == (None, None, "Patient/p2")


def test_only_the_pairs_asked_for_across_hospitals_with_the_same_encounter_ids(
    engine: Engine, settings: Settings
) -> None:
    """PostgreSQL looks the pairs up, SQLite reads both lists and drops the crossed pairs: either way
    hospital A's adm2 and hospital B's adm1 are not asked for and not returned."""
    with session_scope(engine) as session:
        a = make_source(session, name="a").id or 0
        b = make_source(session, name="b").id or 0
        for source_id in (a, b):
            put_encounter(session, source_id, "adm1", "p1", person=PERSON)
            put_encounter(session, source_id, "adm2", "p2")
    with session_scope(engine) as session:
        found = identities(session, [(a, "adm1"), (b, "adm2"), (b, "adm3")], NOW, settings.mappings_dir)
    assert sorted(found) == sorted([(a, "adm1"), (b, "adm2")])
    assert (found[(a, "adm1")].name, found[(b, "adm2")].name) == ("Orlova Vera", None)


def test_the_mrn_follows_the_system_the_mapping_names(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    source_id = _seed(engine)
    (tmp_path / "site.yaml").write_text("extends: default\nidentity:\n  mrn_system: http://h.example/passport\n")
    for name in ("default.yaml", "rules.yaml"):
        (tmp_path / name).write_text((settings.mappings_dir / name).read_text())
    with session_scope(engine) as session:
        session.exec(select(Source).where(col(Source.id) == source_id)).one().mapping = "site"
    with session_scope(engine) as session:
        found = identities(session, [(source_id, "adm1")], NOW, tmp_path)
    assert found[(source_id, "adm1")].mrn == "45 01 123456"


def test_age_counts_full_years_and_partial_dates() -> None:
    today = date(2026, 3, 1)
    assert age_on("1940-03-02", today) == 85
    assert age_on("1940-03-01", today) == 86
    assert age_on("1940", today) == 86
    assert age_on("1940-13", today) is None
    assert age_on(None, today) is None
