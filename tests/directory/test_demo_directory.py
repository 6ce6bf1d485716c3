"""The demo ships a directory (README command 1 shows it), and the demo's cases get suggestions from it."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.referrals.suggestions import suggestions_for_case
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.demo import prepare_demo
from discharge_bridge.demo.directory import ensure_demo_directory
from discharge_bridge.directory.models import ServiceCategory
from discharge_bridge.directory.service import list_organisations, list_services


def test_the_demo_loads_its_directory_once_and_its_cases_get_suggestions(tmp_path: Path) -> None:
    settings, _ = prepare_demo(Settings(data_dir=tmp_path / "data"), activity=False)
    with session_scope(get_engine(settings)) as session:
        services = list_services(session)
        assert len(services) == 15 and {s.category for s in services} == set(ServiceCategory)
        assert all(o.fhir_base_url is None for o in list_organisations(session))  # all use the portal
        cases = list(session.exec(select(Case)))
        suggested = {c.id: suggestions_for_case(session, c) for c in cases}
        assert sum(1 for found in suggested.values() if found) >= len(cases) // 2
        categories = {s.service.category for found in suggested.values() for s in found}
        assert {"gerontology_centre", "social_protection"} <= categories
    assert ensure_demo_directory(settings) == 0  # a second start adds nothing
    with session_scope(get_engine(settings)) as session:
        imports = search_audit(session, AuditQuery(action="directory.import"))
        assert [(e.actor, e.target_name) for e in imports] == [("demo", "directory_demo.csv")]
