"""The case page's Screening section and the HOSPITAL score beside LACE, in English and Russian:
start a pre-filled ISAR, save answers, complete it; a refused completion keeps the page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.cases.screening.models import ScreeningResponse
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.risk.models import RiskAssessment
from tests.support.factories import seed_case
from tests.ui.test_case_page import Browser

pytestmark = pytest.mark.clock
NOW = datetime(2026, 11, 13, 9, 0, tzinfo=UTC)


@pytest.fixture
def case_id(engine: Engine) -> Iterator[int]:
    with time_machine.travel(NOW, tick=False):
        case = seed_case(engine)
        with session_scope(engine) as session:
            risk = session.exec(select(RiskAssessment)).one()
            risk.hospital_score = {
                "total": 4,
                "partial": True,
                "band": None,
                "inputs": {"IT": {"points": 1, "value": "urgent", "evidence": "Encounter/adm1"}, "L": {"points": 2}},
                "missing": ["H", "S", "P"],
            }
            risk.facts = [{"concept": "dementia", "evidence": "Condition/dem", "text": "dementia"}]
            session.add(risk)
        yield case


def test_start_answer_and_complete_an_isar_on_the_page(engine: Engine, settings: Settings, case_id: int) -> None:
    with time_machine.travel(NOW, tick=False):
        browser = Browser(settings, engine, "anna")
        page = browser.get(f"/cases/{case_id}").text
        assert "HOSPITAL" in page and "at least 4" in page and "missing: H, S, P" in page
        assert "No screening yet." in page
        started = browser.post(f"/cases/{case_id}/screenings", {"tool": "isar"})
        assert started.status_code == 303 and started.headers["location"].endswith("#screening")
        with session_scope(engine) as session:
            response = session.exec(select(ScreeningResponse)).one()
            assert response.answers["memory"]["evidence"] == "Condition/dem"
            screening_id = response.id
        page = browser.get(f"/cases/{case_id}").text
        assert 'name="a-memory" value="yes" checked' in page
        assert "from the data" in page and "Condition/dem" in page
        url = f"/cases/{case_id}/screenings/{screening_id}"
        refused = browser.post(url, {"version": "1", "a-sees-well": "no", "complete": "1"})
        assert refused.status_code == 422 and "unanswered items: help-before, help-more, medications" in refused.text
        answers = {"a-help-before": "no", "a-help-more": "no", "a-sees-well": "no", "a-medications": "no"}
        done = browser.post(
            url, {"version": "1", **answers, "a-memory": "yes", "a-hospitalised": "no", "complete": "1"}
        )
        assert done.status_code == 303
        with session_scope(engine) as session:
            response = session.exec(select(ScreeningResponse)).one()
            assert (response.status, response.total, response.band, response.completed_by) == (
                "completed",
                2,
                "at_risk",
                "anna",
            )
        page = browser.get(f"/cases/{case_id}").text
        assert "ISAR · completed" in page and "(at risk)" in page and "Save the amendment" in page


def test_the_section_in_russian(engine: Engine, settings: Settings, case_id: int) -> None:
    with time_machine.travel(NOW, tick=False):
        browser = Browser(settings, engine, "olga", locale="ru")
        browser.post(f"/cases/{case_id}/screenings", {"tool": "brass"})
        page = browser.get(f"/cases/{case_id}").text
        assert "Скрининг (BRASS, ISAR)" in page and "не менее 4" in page
        assert "Условия проживания и поддержка" in page and "из данных" in page


def test_a_bed_manager_sees_but_may_not_start(engine: Engine, settings: Settings, case_id: int) -> None:
    with time_machine.travel(NOW, tick=False):
        browser = Browser(settings, engine, "boris", role="bed_manager")
        assert "Start a screening" not in browser.get(f"/cases/{case_id}").text
        assert browser.post(f"/cases/{case_id}/screenings", {"tool": "isar"}).status_code == 403
