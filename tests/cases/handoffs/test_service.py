"""Handoff services on SQLite and PostgreSQL: the flow, the documents checklist, broken mapping files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from discharge_bridge.cases.errors import ConfigError, InvalidInput, InvalidTransition
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.handoffs.checklist import load_documents
from discharge_bridge.cases.handoffs.models import DestinationType, HandoffStatus
from discharge_bridge.cases.handoffs.service import create_handoff, update_handoff
from discharge_bridge.config import PROJECT_ROOT
from discharge_bridge.db import session_scope
from tests.support.factories import flagged_case, make_source

MAPPINGS = PROJECT_ROOT / "mappings"


def test_a_gerontology_centre_handoff_runs_to_scheduled_with_its_documents(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        handoff = create_handoff(
            session,
            case,
            actor="anna",
            destination_type=DestinationType.gerontology_centre,
            mappings_dir=MAPPINGS,
            organisation="City Gerontology Centre",
        )
        codes = [d["code"] for d in handoff.documents]
        assert {"passport", "application", "medical_report"} <= set(codes)
        assert all(d["done"] is False and d["done_at"] is None for d in handoff.documents)
        update_handoff(
            session,
            case,
            handoff,
            actor="anna",
            expected_version=1,
            status=HandoffStatus.referred,
            documents={"passport": True, "application": True},
        )
        session.flush()
        done = {d["code"]: d["done"] for d in handoff.documents}
        assert done["passport"] and done["application"] and not done["medical_report"]
        assert handoff.referred_at is not None and handoff.accepted_at is None
        with pytest.raises(InvalidTransition) as err:
            update_handoff(
                session, case, handoff, actor="anna", expected_version=handoff.version, status=HandoffStatus.completed
            )
        assert err.value.extra["allowed"] == ["accepted", "cancelled", "declined"]
        with pytest.raises(InvalidInput) as bad:
            update_handoff(
                session, case, handoff, actor="anna", expected_version=handoff.version, documents={"pasport": True}
            )
        assert bad.value.loc == ("body", "documents", "pasport")
        update_handoff(
            session, case, handoff, actor="anna", expected_version=handoff.version, status=HandoffStatus.accepted
        )
        session.flush()
        update_handoff(
            session, case, handoff, actor="anna", expected_version=handoff.version, status=HandoffStatus.scheduled
        )
        assert handoff.scheduled_at is not None
        updates = [e.data for e in timeline(session, case.id or 0) if e.kind == "handoff_updated"]
        assert updates[0]["status"] == ["proposed", "referred"]
        assert updates[0]["documents"] == {"passport": [False, True], "application": [False, True]}


def test_the_shipped_checklist_covers_every_destination() -> None:
    documents = load_documents(MAPPINGS)
    for destination in DestinationType:
        assert documents.checklist(destination), destination


def test_a_broken_documents_file_names_the_file_and_key(tmp_path: Path) -> None:
    shutil.copy(MAPPINGS / "handoff_documents.yaml", tmp_path / "handoff_documents.yaml")
    path = tmp_path / "handoff_documents.yaml"
    path.write_text(path.read_text().replace("relatives: [passport,", "relatives: [pasport,"))
    with pytest.raises(ConfigError) as err:
        load_documents(tmp_path)
    assert "handoff_documents.yaml" in str(err.value) and "destinations.relatives" in str(err.value)
    path.write_text("destinations: {nursing_home: []}\ndocuments: {}\n")
    with pytest.raises(ConfigError, match="nursing_home"):
        load_documents(tmp_path)
    with pytest.raises(ConfigError, match="missing"):
        load_documents(tmp_path / "nowhere")
