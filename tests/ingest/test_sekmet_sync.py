"""The polling sync against a real FHIR server process (the EHR simulator ``sekmet-fhir``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.assessment import sync_and_assess
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import make_engine, session_scope
from discharge_bridge.ingest.models import ClinicalSnapshot, DeadLetter, EncounterSnapshot, PatientSnapshot
from discharge_bridge.sources.models import SyncStatus
from tests.support.clock import child_env
from tests.support.db import migrated_sqlite
from tests.support.sekmet import SekmetServer

pytestmark = pytest.mark.slow

V3 = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def admission_bundle(n: int, *, prefix: str = "a", start: int = 0) -> dict[str, Any]:
    """A transaction Bundle with n admitted patients, each with a condition and a social observation."""
    entries: list[dict[str, Any]] = []

    def put(resource: dict[str, Any]) -> None:
        entries.append(
            {"resource": resource, "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}}
        )

    for i in range(start, start + n):
        pid, eid = f"{prefix}p{i}", f"{prefix}e{i}"
        put(
            {
                "resourceType": "Patient",
                "id": pid,
                "birthDate": f"19{30 + i % 60:02d}-05-0{1 + i % 9}",
                "gender": "female" if i % 2 else "male",
            }
        )
        put(
            {
                "resourceType": "Encounter",
                "id": eid,
                "status": "in-progress",
                "class": {"system": V3, "code": "IMP" if i % 5 else "ACUTE"},
                "subject": {"reference": f"Patient/{pid}"},
                "period": {"start": f"2026-11-{1 + i % 20:02d}T08:00:00+03:00"},
                "location": [
                    {
                        "location": {"display": f"Ward {i % 4}"},
                        "physicalType": {"coding": [{"code": "wa"}]},
                        "status": "active",
                    }
                ],
            }
        )
        put(
            {
                "resourceType": "Condition",
                "id": f"{prefix}c{i}",
                "subject": {"reference": f"Patient/{pid}"},
                "clinicalStatus": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
                },
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "F03.90"}]},
            }
        )
        put(
            {
                "resourceType": "Observation",
                "id": f"{prefix}o{i}",
                "status": "final",
                "subject": {"reference": f"Patient/{pid}"},
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "social-history",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": "http://loinc.org", "code": "63512-8"}]},
                "valueQuantity": {"value": 1},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def server_versions(server: SekmetServer, resource_type: str, **params: Any) -> dict[str, str]:
    """{id: versionId} of every matching resource on the server, following next links."""
    found: dict[str, str] = {}
    bundle = server.get(resource_type, _count=100, **params)
    while True:
        for entry in bundle.get("entry", []):
            res = entry["resource"]
            if res["resourceType"] == resource_type:
                found[res["id"]] = res["meta"]["versionId"]
        nxt = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
        if nxt is None:
            return found
        path = nxt.split("/fhir/", 1)[1]
        bundle = server.get(path)


def stored_versions(engine: Engine, model: Any) -> dict[str, str | None]:
    with Session(engine) as session:
        rows = session.exec(select(model.fhir_id, model.version_id)).all()
    assert len(rows) == len({r[0] for r in rows}), "duplicate snapshots"
    return dict(rows)


def test_store_matches_the_server_after_admissions_updates_and_discharges(
    sekmet: SekmetServer, engine: Engine, settings: Settings
) -> None:
    settings = settings.model_copy(update={"sync_page_size": 7, "sync_overlap_seconds": 5})
    sekmet.transaction(admission_bundle(30))
    with session_scope(engine) as session:
        add_source(session, name="sim", hospital="Simulated General", base_url=sekmet.base_url)

    first = sync_and_assess("sim", engine=engine, settings=settings)
    assert first.status == SyncStatus.ok, first.error
    assert first.pages >= 5  # 30 encounters at 7 a page: the next links were followed

    for i in range(0, 10, 2):
        sekmet.discharge(f"ae{i}", end="2026-11-22T12:00:00+03:00", disposition_code="home")
    for i in (1, 3):
        enc = sekmet.get(f"Encounter/ae{i}")
        enc["status"] = "onleave"
        sekmet.put(enc)
    enc = sekmet.get("Encounter/ae5")
    enc["status"] = "entered-in-error"
    sekmet.put(enc)
    cond = sekmet.get("Condition/ac7")
    cond["clinicalStatus"]["coding"][0]["code"] = "resolved"
    sekmet.put(cond)
    sekmet.transaction(admission_bundle(4, start=30))
    time.sleep(1.1)  # let the server clock pass the newest lastUpdated before the next pass

    second = sync_and_assess("sim", engine=engine, settings=settings)
    assert second.status == SyncStatus.ok, second.error
    assert second.dead_letters == 0

    assert stored_versions(engine, EncounterSnapshot) == server_versions(sekmet, "Encounter")
    assert stored_versions(engine, PatientSnapshot) == server_versions(sekmet, "Patient")
    with Session(engine) as session:
        statuses = dict(session.exec(select(EncounterSnapshot.fhir_id, EncounterSnapshot.status)).all())
        dispositions = dict(
            session.exec(select(EncounterSnapshot.fhir_id, EncounterSnapshot.discharge_disposition)).all()
        )
        cond_status = session.exec(select(ClinicalSnapshot.status).where(ClinicalSnapshot.fhir_id == "ac7")).one()
        clinical = session.exec(select(func.count()).select_from(ClinicalSnapshot)).one()
    assert [statuses[f"ae{i}"] for i in (0, 1, 5, 7, 31)] == [
        "finished",
        "onleave",
        "entered-in-error",
        "in-progress",
        "in-progress",
    ]
    assert dispositions["ae0"] == "home"
    assert cond_status == "resolved"
    assert clinical == 68  # 34 patients x (condition + observation), no duplicates

    third = sync_and_assess("sim", engine=engine, settings=settings)
    assert (third.created, third.updated) == (0, 0)


def test_smart_backend_services_auth_against_the_simulator(
    sekmet_factory: Any, engine: Engine, settings: Settings
) -> None:
    server: SekmetServer = sekmet_factory(auth="smart")
    server.transaction(admission_bundle(3, prefix="s"))
    with session_scope(engine) as session:
        add_source(
            session,
            name="smart-sim",
            hospital="SMART General",
            base_url=server.base_url,
            auth={
                "type": "smart",
                "client_id": server.smart_client_id,
                "private_key_file": str(server.smart_private_key_path),
                "kid": server.smart_kid,
                "scope": "system/*.read",
            },
        )
    result = sync_and_assess("smart-sim", engine=engine, settings=settings)
    assert result.status == SyncStatus.ok, result.error
    assert len(stored_versions(engine, EncounterSnapshot)) == 3
    server.stop()


def test_wrong_smart_key_fails_with_a_clear_error(
    sekmet_factory: Any, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    server: SekmetServer = sekmet_factory(auth="smart")
    other = tmp_path / "other.pem"
    other.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with session_scope(engine) as session:
        add_source(
            session,
            name="bad-key",
            hospital="H",
            base_url=server.base_url,
            auth={
                "type": "smart",
                "client_id": server.smart_client_id,
                "private_key_file": str(other),
                "kid": server.smart_kid,
            },
        )
    result = sync_and_assess("bad-key", engine=engine, settings=settings)
    assert result.status == SyncStatus.failed
    assert result.error and "token" in result.error.lower()
    server.stop()


def _cli(env: dict[str, str], *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("discharge-bridge")
    return subprocess.Popen([str(exe), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_a_killed_sync_process_resumes_to_the_same_state(sekmet: SekmetServer, tmp_path: Path) -> None:
    sekmet.transaction(admission_bundle(60, prefix="k"))  # 12 pages of 5, killed once 20 are stored
    bad = {
        "resourceType": "Encounter",
        "id": "knosubject",
        "status": "in-progress",
        "class": {"system": V3, "code": "IMP"},
    }
    sekmet.put(bad)

    def env_for(name: str) -> dict[str, str]:
        return {
            **child_env(),
            "DISCHARGE_BRIDGE_DATA_DIR": str(tmp_path / name),
            "DISCHARGE_BRIDGE_SYNC_PAGE_SIZE": "5",
        }

    for name in ("killed", "clean"):  # the source is set up in this process: only the syncs run as commands
        setup = make_engine(migrated_sqlite(tmp_path / name).sqlalchemy_url)
        with session_scope(setup) as session:
            add_source(session, name="sim", hospital="Sim", base_url=sekmet.base_url)
        setup.dispose()

    killed_env = env_for("killed")
    proc = _cli(killed_env, "sync", "--once")
    engine = make_engine(Settings(data_dir=tmp_path / "killed").sqlalchemy_url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it once a few pages are in, mid-pass
        with Session(engine) as session:
            if session.exec(select(func.count()).select_from(EncounterSnapshot)).one() >= 20:
                break
        time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    with Session(engine) as session:
        partial = session.exec(select(func.count()).select_from(EncounterSnapshot)).one()
    assert 0 < partial < 61, "the kill must land mid-pass"

    for name in ("killed", "clean"):
        done = _cli(env_for(name), "sync", "--once", "--format", "json")
        _out, errout = done.communicate(timeout=120)
        assert done.returncode == 0, errout.decode()

    clean = make_engine(Settings(data_dir=tmp_path / "clean").sqlalchemy_url)
    for model in (PatientSnapshot, EncounterSnapshot, ClinicalSnapshot):
        assert stored_versions(engine, model) == stored_versions(clean, model)
    for eng in (engine, clean):
        with Session(eng) as session:
            letters = session.exec(select(DeadLetter.fhir_id, DeadLetter.count)).all()
        assert [fid for fid, _ in letters] == ["knosubject"]
    engine.dispose()
    clean.dispose()
