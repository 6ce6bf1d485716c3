"""New cases the sync opens get a coordinator: round robin derived from the data, or by ward with a
fallback; validated when configured. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from discharge_bridge.cases.batch import open_cases_for_flags
from discharge_bridge.cases.events import EventKind
from discharge_bridge.cases.models import Case, CaseEvent
from discharge_bridge.cases.service import assign
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.config import get_settings
from discharge_bridge.connections.service import update_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.normalise import normalise
from discharge_bridge.ingest.store import upsert_snapshots
from discharge_bridge.sources.service import SourceError, get_source
from discharge_bridge.users.service import disable_user
from tests.support.factories import RULES, make_source, make_user, put_risk
from tests.support.fakefhir import encounter, patient


def _admission(session: Session, source_id: int, eid: str, ward: str | None = None) -> None:
    extra: dict[str, Any] = {}
    if ward:
        extra["location"] = [{"location": {"display": ward}, "physicalType": {"coding": [{"code": "wa"}]}}]
    pid = f"p-{eid}"
    upsert_snapshots(session, source_id, [normalise(patient(pid)), normalise(encounter(eid, pid, **extra))])
    put_risk(session, source_id, eid, pid)


def _coordinators(session: Session, source_id: int) -> dict[str, str | None]:
    return {c.encounter_fhir_id: c.coordinator for c in session.exec(select(Case).where(Case.source_id == source_id))}


def test_round_robin_goes_to_the_least_recently_assigned_enabled_coordinator(engine: Engine) -> None:
    with session_scope(engine) as session:
        city = make_source(session, "city").id or 0
        make_source(session, "other")
        for name in ("carol", "alice", "bob"):
            make_user(session, name, "coordinator", ("city",))
        make_user(session, "olga", "coordinator", ("other",))  # another hospital's coordinator
        make_user(session, "bea", "bed_manager", ("city",))  # not a coordinator
        make_user(session, "zed", "coordinator", ("city",))
        disable_user(session, "zed")
        for eid in ("a1", "a2", "a3", "a4"):
            _admission(session, city, eid)
        assert open_cases_for_flags(session, city, rules_version=RULES) == 4
        assert _coordinators(session, city) == {"a1": "alice", "a2": "bob", "a3": "carol", "a4": "alice"}
        # Tasks follow the case; an `assigned` event records it in the same transaction.
        tasks = session.exec(select(Task).join(Case, col(Case.id) == Task.case_id).where(Case.source_id == city)).all()
        assert sorted((t.owner or "") for t in tasks) == ["alice", "alice", "bob", "carol"]
        events = session.exec(select(CaseEvent).where(CaseEvent.kind == EventKind.assigned)).all()
        assert sorted(e.data["coordinator"][1] for e in events) == ["alice", "alice", "bob", "carol"]
        assert all(e.actor == "system" and e.data["coordinator"][0] is None for e in events)

    with session_scope(engine) as session:
        # Reassigning by hand counts: a4 moved from alice to carol, so alice's newest case is a1 again
        # and she is next, then bob (newest a2); carol (newest a4) waits.
        newest = session.exec(select(Case).where(Case.encounter_fhir_id == "a4")).one()
        assign(session, newest, "carol", actor="lead")
        _admission(session, city, "a5")
        _admission(session, city, "a6")
        open_cases_for_flags(session, city, rules_version=RULES)
        got = _coordinators(session, city)
        assert (got["a5"], got["a6"]) == ("alice", "bob")


def test_by_ward_with_round_robin_or_no_fallback(engine: Engine) -> None:
    with session_scope(engine) as session:
        city = make_source(session, "city").id or 0
        for name in ("alice", "bob", "carol"):
            make_user(session, name, "coordinator", ("city",))
        update_source(
            session,
            "city",
            {"assignment": {"mode": "ward", "wards": {"Ward 3A": "carol", "Ward 5": "bob"}, "fallback": "round_robin"}},
        )
        _admission(session, city, "w1", "Ward 3A")
        _admission(session, city, "w2", "ward 3a ")  # the EHR's spelling varies in case and spaces
        _admission(session, city, "w3", "Ward 5")
        _admission(session, city, "w4", "Ward 9")  # nobody covers it: round robin
        _admission(session, city, "w5")  # no ward at all
        open_cases_for_flags(session, city, rules_version=RULES)
        got = _coordinators(session, city)
        assert (got["w1"], got["w2"], got["w3"]) == ("carol", "carol", "bob")
        # Round robin over everyone: alice had no case, then carol's newest (w2) is older than bob's (w3).
        assert (got["w4"], got["w5"]) == ("alice", "carol")

    with session_scope(engine) as session:
        update_source(
            session, "city", {"assignment": {"mode": "ward", "wards": {"Ward 3A": "carol"}, "fallback": "none"}}
        )
        _admission(session, city, "w6", "Ward 9")
        _admission(session, city, "w7", "Ward 3A")
        disable_user(session, "carol")  # a ward's coordinator who left: the fallback applies
        _admission(session, city, "w8", "Ward 3A")
        open_cases_for_flags(session, city, rules_version=RULES)
        got = _coordinators(session, city)
        assert (got["w6"], got["w7"], got["w8"]) == (None, None, None)


def test_no_coordinators_leaves_new_cases_unassigned(engine: Engine) -> None:
    with session_scope(engine) as session:
        city = make_source(session, "city").id or 0
        _admission(session, city, "a1")
        assert open_cases_for_flags(session, city, rules_version=RULES) == 1
        assert _coordinators(session, city) == {"a1": None}
        assert session.exec(select(CaseEvent).where(CaseEvent.kind == EventKind.assigned)).all() == []


def test_configuring_checks_modes_and_that_ward_users_coordinate_this_hospital(engine: Engine) -> None:
    with session_scope(engine) as session:
        make_source(session, "city")
        make_source(session, "other")
        make_user(session, "alice", "coordinator", ("city",))
        make_user(session, "olga", "coordinator", ("other",))
        make_user(session, "bea", "bed_manager", ("city",))
        for bad, message in [
            ({"mode": "lottery"}, "assignment"),
            ({"mode": "ward", "wards": {}}, "at least one ward"),
            ({"mode": "ward", "wards": {"3A": "alice"}, "fallback": "someone"}, "assignment"),
            ({"mode": "ward", "wards": {"3A": "olga", "4B": "bea", "5": "nobody"}}, "bea, nobody, olga"),
        ]:
            with pytest.raises(SourceError, match=message):
                update_source(session, "city", {"assignment": bad})
        with pytest.raises(SourceError, match="HH:MM"):
            update_source(session, "city", {"morning_time": "7am"})
        saved = update_source(session, "city", {"assignment": {"mode": "ward", "wards": {" 3A ": "alice"}}})
        assert saved.assignment == {"mode": "ward", "wards": {"3A": "alice"}, "fallback": "round_robin"}
        back = update_source(session, "city", {"assignment": {"mode": "round_robin", "wards": {"3A": "alice"}}})
        assert back.assignment == {"mode": "round_robin"}


def test_sources_set_configures_assignment_and_morning_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from discharge_bridge.cli import app
    from discharge_bridge.db import get_engine, upgrade

    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        upgrade()
        with session_scope(get_engine()) as session:
            make_source(session, "city")
            make_user(session, "alice", "coordinator", ("city",))
            make_user(session, "bob", "coordinator", ("city",))
        runner = CliRunner()
        args = ["sources", "set", "city", "--assignment", "ward", "--ward", "alice=Ward 3A", "--ward", "bob=Ward 5"]
        result = runner.invoke(app, [*args, "--ward-fallback", "none", "--morning-time", "06:30"])
        assert result.exit_code == 0, result.output
        with session_scope(get_engine()) as session:
            city = get_source(session, "city")
            assert city.assignment == {
                "mode": "ward",
                "wards": {"Ward 3A": "alice", "Ward 5": "bob"},
                "fallback": "none",
            }
            assert city.morning_time == "06:30"
        refused = runner.invoke(app, ["sources", "set", "city", "--assignment", "ward", "--ward", "mallory=Ward 3A"])
        assert refused.exit_code == 1 and "mallory" in refused.output
        malformed = runner.invoke(app, ["sources", "set", "city", "--assignment", "ward", "--ward", "alice"])
        assert malformed.exit_code == 2 and "USER=WARD" in malformed.output
        result = runner.invoke(app, ["sources", "set", "city", "--assignment", "round_robin"])
        assert result.exit_code == 0, result.output
        with session_scope(get_engine()) as session:
            assert get_source(session, "city").assignment == {"mode": "round_robin"}
    finally:
        get_settings.cache_clear()
