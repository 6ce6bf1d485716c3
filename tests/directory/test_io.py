"""Import and export of the directory: CSV (all or nothing, every problem by line and column, formula
cells quoted) and FHIR R4 Bundles (valid for the R4B models; CSV -> DB -> FHIR -> DB gives the same rows)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.audit.models import AdminAuditEntry
from discharge_bridge.config import PROJECT_ROOT
from discharge_bridge.db import session_scope
from discharge_bridge.directory.csv_io import COLUMNS, import_csv, write_csv
from discharge_bridge.directory.errors import ImportRefused
from discharge_bridge.directory.fhir_io import bundle, import_bundle
from discharge_bridge.directory.models import DirectoryService, Organisation, ServiceCategory

DEMO = (PROJECT_ROOT / "mappings" / "directory_demo.csv").read_text(encoding="utf-8")


def fields(row: Any, skip: set[str]) -> dict[str, Any]:
    return {f: getattr(row, f) for f in type(row).model_fields if f not in skip}


def snapshot(session: Session) -> dict[str, Any]:
    """Every row's fields but ids and times, by code, with the organisation named by code."""
    orgs = {o.id: o for o in session.exec(select(Organisation))}
    skip = {"id", "updated_at", "organisation_id"}
    return {
        "organisations": {o.code: fields(o, skip) for o in orgs.values()},
        "services": {
            s.code: {**fields(s, skip), "organisation": orgs[s.organisation_id].code}
            for s in session.exec(select(DirectoryService))
        },
    }


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_demo_directory_imports_and_covers_every_category(engine: Engine) -> None:
    with session_scope(engine) as session:
        result = import_csv(session, DEMO, actor="tests")
        assert (result.services_created, result.unchanged) == (15, 0)
        categories = {s.category for s in session.exec(select(DirectoryService))}
        assert categories == set(ServiceCategory)
        assert all(not o.fhir_base_url for o in session.exec(select(Organisation)))
        home = session.exec(select(DirectoryService).where(DirectoryService.code == "home-care-tverskoy")).one()
        assert [d["code"] for d in home.documents] == [
            "application",
            "passport",
            "snils",
            "medical_report",
            "income_relatives",
        ]
        assert home.area == ["Тверской", "Мещанский"] and home.needs == ["social", "daily_living"]
    with session_scope(engine) as session:  # again: nothing changes, and one import entry each time
        result = import_csv(session, DEMO, actor="tests")
        assert (result.services_created, result.services_updated, result.unchanged) == (0, 0, 28)
        imports = session.exec(select(AdminAuditEntry).where(AdminAuditEntry.action == "directory.import")).all()
        assert len(imports) == 2


def test_a_bad_file_writes_nothing_and_names_every_bad_cell(engine: Engine) -> None:
    rows = csv_rows(DEMO)
    rows[0]["category"] = "spa"  # line 2
    rows[2]["min_age"] = "old"  # line 4
    rows[3]["documents"] = "passport"  # line 5: no label
    rows[4]["active"] = "maybe"  # line 6
    rows[5]["code"] = rows[6]["code"]  # line 7 repeats line 8's code... reported on the later one
    rows[14]["organisation_name"] = "Another name"  # line 16: the organisation of line 12, named otherwise
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    with session_scope(engine) as session, pytest.raises(ImportRefused) as refused:
        import_csv(session, out.getvalue(), actor="tests")
    found = {(line, column) for line, column, _ in refused.value.problems}
    assert found == {
        (2, "category"),
        (4, "min_age"),
        (5, "documents"),
        (6, "active"),
        (8, "code"),
        (16, "organisation_name"),
    }, refused.value.problems
    assert "line 2, category" in refused.value.message
    with session_scope(engine) as session:
        assert session.exec(select(DirectoryService)).first() is None


def test_a_file_with_unknown_or_missing_columns_is_refused(engine: Engine) -> None:
    with session_scope(engine) as session, pytest.raises(ImportRefused) as refused:
        import_csv(session, "organisation_code,name,colour\nx,y,red\n", actor="tests")
    assert set(refused.value.problems) == {
        (1, "organisation_name", "required column missing"),
        (1, "code", "required column missing"),
        (1, "category", "required column missing"),
        (1, "colour", "unknown column"),
    }


def test_export_quotes_formula_cells_and_reads_back(engine: Engine) -> None:
    rows = csv_rows(DEMO)[:1]
    rows[0]["pays_for"] = '=HYPERLINK("http://evil")'
    rows[0]["organisation_phone"] = "+7 495 650-00-01"
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    with session_scope(engine) as session:
        import_csv(session, out.getvalue(), actor="tests")
        exported = io.StringIO()
        assert write_csv(session, exported) == 1
        [row] = csv_rows(exported.getvalue())
        assert row["pays_for"] == '\'=HYPERLINK("http://evil")' and row["organisation_phone"] == "'+7 495 650-00-01"
        before = snapshot(session)
        result = import_csv(session, exported.getvalue(), actor="tests")  # the guard is undone on the way in
        assert result.unchanged == 2 and snapshot(session) == before


def test_csv_to_db_to_fhir_to_db_gives_the_same_directory(engine: Engine, tmp_path: Any) -> None:
    text = DEMO.replace(",,true,home-care-presnya", ",https://fhir.csso.example/r4,true,home-care-presnya", 1)
    with session_scope(engine) as session:
        import_csv(session, text, actor="tests")
        before = snapshot(session)
        exported = bundle(session)
    assert before["organisations"]["csso-presnya"]["fhir_base_url"] == "https://fhir.csso.example/r4"
    Bundle.model_validate(exported)  # valid FHIR (R4B models)
    kinds = sorted({e["resource"]["resourceType"] for e in exported["entry"]})
    assert kinds == ["Endpoint", "HealthcareService", "Location", "Organization"]
    with session_scope(engine) as session:  # empty the directory, then import the bundle
        for row in session.exec(select(DirectoryService)):
            session.delete(row)
        session.flush()
        for org in session.exec(select(Organisation)):
            session.delete(org)
    with session_scope(engine) as session:
        result = import_bundle(session, exported, actor="tests")
        assert (result.organisations_created, result.services_created) == (13, 15)
        assert snapshot(session) == before
        assert bundle(session) == exported


def test_a_bundle_with_bad_entries_is_refused_whole(engine: Engine) -> None:
    with session_scope(engine) as session:
        import_csv(session, DEMO, actor="tests")
        exported = bundle(session)
    services = [e for e in exported["entry"] if e["resource"]["resourceType"] == "HealthcareService"]
    services[0]["resource"]["category"][0]["coding"][0]["code"] = "spa"
    services[1]["resource"]["providedBy"]["reference"] = "Organization/nobody"
    with session_scope(engine) as session, pytest.raises(ImportRefused) as refused:
        import_bundle(session, exported, actor="tests")
    index = {id(e): i for i, e in enumerate(exported["entry"])}
    assert {(line, column) for line, column, _ in refused.value.problems} == {
        (index[id(services[0])], "category"),
        (index[id(services[1])], "providedBy"),
    }
    with pytest.raises(ImportRefused, match="a FHIR Bundle is expected"):
        import_bundle(Session(engine), {"resourceType": "Patient"}, actor="tests")
    broken = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Organization", "active": []}}],
    }
    with pytest.raises(ImportRefused, match="line 0, entry"):  # not FHIR: the R4B models refuse it
        import_bundle(Session(engine), broken, actor="tests")


def test_a_service_moved_to_another_organisation_is_audited(engine: Engine) -> None:
    rows = csv_rows(DEMO)[:2]  # two services of two organisations
    rows[1]["code"] = rows[0]["code"] + "-2"
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    with session_scope(engine) as session:
        import_csv(session, out.getvalue(), actor="tests")
    moved = [{**rows[1], **{k: v for k, v in rows[0].items() if k.startswith("organisation_")}}]
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS)
    writer.writeheader()
    writer.writerows(moved)
    with session_scope(engine) as session:
        result = import_csv(session, out.getvalue(), actor="olga")
        assert result.services_updated == 1
        entry = session.exec(
            select(AdminAuditEntry).where(
                AdminAuditEntry.actor == "olga", AdminAuditEntry.action == "directory.service_edit"
            )
        ).one()
        assert entry.target_name == rows[1]["code"] and list(entry.details) == ["organisation_id"]
