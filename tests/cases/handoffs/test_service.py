"""Handoff services on SQLite and PostgreSQL: the flow, the documents checklist, broken mapping files, and
completing only with every document or an override with a reason."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session

from discharge_bridge.cases.errors import ConfigError, InvalidInput, InvalidTransition
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.handoffs.checklist import load_documents
from discharge_bridge.cases.handoffs.models import DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.handoffs.service import DocumentsMissing, create_handoff, update_handoff
from discharge_bridge.cases.models import Case
from discharge_bridge.config import PROJECT_ROOT
from discharge_bridge.db import session_scope
from tests.support.factories import flagged_case, make_source

MAPPINGS = PROJECT_ROOT / "mappings"
T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


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


def _scheduled(session: Session, destination: DestinationType = DestinationType.relatives) -> tuple[Case, Handoff]:
    """A flagged case with a handoff moved up to scheduled, no document ticked."""
    case = flagged_case(session, make_source(session).id or 0)
    handoff = create_handoff(session, case, actor="anna", destination_type=destination, mappings_dir=MAPPINGS)
    for status in (HandoffStatus.referred, HandoffStatus.accepted, HandoffStatus.scheduled):
        update_handoff(session, case, handoff, actor="anna", expected_version=handoff.version, status=status)
        session.flush()
    return case, handoff


@pytest.mark.clock
def test_a_handoff_does_not_complete_while_documents_are_missing(engine: Engine) -> None:
    with time_machine.travel(T0, tick=False), session_scope(engine) as session:
        case, handoff = _scheduled(session)
        events = len(timeline(session, case.id or 0))
        with pytest.raises(DocumentsMissing) as refused:
            update_handoff(
                session,
                case,
                handoff,
                actor="anna",
                expected_version=handoff.version,
                status=HandoffStatus.completed,
                documents={"passport": True},
            )
        assert refused.value.status_code == 409
        assert refused.value.extra["missing"] == ["consent_relatives", "medical_report"]
        assert "consent_relatives, medical_report" in refused.value.message
        assert [d["label"] for d in refused.value.missing] == [
            "Written consent of the receiving relatives",
            "Medical report for social services (form 027/u)",
        ]
        # a blank reason is no reason
        with pytest.raises(DocumentsMissing):
            update_handoff(
                session,
                case,
                handoff,
                actor="anna",
                expected_version=handoff.version,
                status=HandoffStatus.completed,
                override_reason="   ",
            )
        assert len(timeline(session, case.id or 0)) == events


@pytest.mark.clock
def test_a_handoff_completes_when_every_document_is_ticked_in_the_same_change(engine: Engine) -> None:
    with time_machine.travel(T0, tick=False), session_scope(engine) as session:
        case, handoff = _scheduled(session)
        codes = {str(d["code"]): True for d in handoff.documents}
        assert update_handoff(
            session,
            case,
            handoff,
            actor="anna",
            expected_version=handoff.version,
            status=HandoffStatus.completed,
            documents=codes,
            override_reason="nothing is missing, so this is not recorded",
        )
        assert handoff.status == HandoffStatus.completed and handoff.documents_override is None
        last = timeline(session, case.id or 0)[-1]
        assert last.kind == "handoff_updated" and "documents_override" not in last.data


@pytest.mark.clock
def test_an_override_with_a_reason_completes_and_is_recorded(engine: Engine) -> None:
    with time_machine.travel(T0, tick=False), session_scope(engine) as session:
        case, handoff = _scheduled(session)
        update_handoff(
            session, case, handoff, actor="anna", expected_version=handoff.version, documents={"passport": True}
        )
        session.flush()
        assert update_handoff(
            session,
            case,
            handoff,
            actor="boris",
            expected_version=handoff.version,
            status=HandoffStatus.completed,
            override_reason="  The daughter brings the consent on Monday  ",
        )
        session.flush()
        assert handoff.status == HandoffStatus.completed and handoff.completed_at == T0
        assert handoff.documents_override == {
            "by": "boris",
            "at": T0.isoformat(),
            "reason": "The daughter brings the consent on Monday",
            "missing": ["consent_relatives", "medical_report"],
        }
        event = timeline(session, case.id or 0)[-1]
        assert (event.kind, event.actor, event.at) == ("handoff_updated", "boris", T0)
        assert event.data["status"] == ["scheduled", "completed"]
        assert event.data["documents_override"] == {
            "reason": "The daughter brings the consent on Monday",
            "missing": ["consent_relatives", "medical_report"],
        }
    with session_scope(engine) as session:  # stored, not only in memory
        stored = session.get(Handoff, handoff.id)
        assert stored is not None and stored.documents_override is not None
        assert stored.documents_override["missing"] == ["consent_relatives", "medical_report"]


def test_an_override_reason_goes_with_completing_only(engine: Engine) -> None:
    with session_scope(engine) as session:
        case, handoff = _scheduled(session)
        with pytest.raises(InvalidInput) as wrong:
            update_handoff(
                session,
                case,
                handoff,
                actor="anna",
                expected_version=handoff.version,
                status=HandoffStatus.declined,
                override_reason="why not",
            )
        assert wrong.value.loc == ("body", "override_reason")
        with pytest.raises(InvalidInput, match="at most 2000"):
            update_handoff(
                session,
                case,
                handoff,
                actor="anna",
                expected_version=handoff.version,
                status=HandoffStatus.completed,
                override_reason="x" * 2001,
            )
        assert handoff.status == HandoffStatus.scheduled and handoff.documents_override is None
