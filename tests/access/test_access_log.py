"""The access log: one entry per view, searchable by who, which patient, which hospital; CSV export."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge.access import AccessQuery, iter_access, record_view, search_access, write_csv
from discharge_bridge.db import session_scope
from tests.support.factories import make_source

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _seed(engine: Engine) -> tuple[int, int]:
    with session_scope(engine) as session:
        city, north = make_source(session, "city").id or 0, make_source(session, "north").id or 0
    with time_machine.travel(T0, tick=False), session_scope(engine) as session:
        record_view(session, user="anna", route="ui.worklist", patients=[(city, "p1"), (city, "p2"), (city, "p1")])
    with time_machine.travel(T0 + timedelta(hours=1), tick=False), session_scope(engine) as session:
        record_view(session, user="boris", route="ui.board", patients=[(city, "p2"), (north, "n1")])
        assert record_view(session, user="boris", route="ui.board", patients=[]) is None  # nothing shown
    return city, north


def test_one_entry_per_view_with_every_patient_shown_once(engine: Engine) -> None:
    city, north = _seed(engine)
    with session_scope(engine) as session:
        rows = search_access(session, AccessQuery())
    assert [(r.username, r.route, r.patients) for r in rows] == [
        ("boris", "ui.board", ((city, "p2"), (north, "n1"))),
        ("anna", "ui.worklist", ((city, "p1"), (city, "p2"))),
    ]
    assert rows[1].at == T0


def test_search_by_user_patient_time_and_hospital(engine: Engine) -> None:
    city, north = _seed(engine)
    with session_scope(engine) as session:
        assert [r.username for r in search_access(session, AccessQuery(username="anna"))] == ["anna"]
        seen_p2 = search_access(session, AccessQuery(source_id=city, patient_fhir_id="p2"))
        assert [r.username for r in seen_p2] == ["boris", "anna"]
        assert [r.username for r in search_access(session, AccessQuery(since=T0 + timedelta(minutes=1)))] == ["boris"]
        # An admin of one hospital sees the views of that hospital's patients only.
        north_only = search_access(session, AccessQuery(), source_ids=(north,))
    assert [(r.username, r.patients) for r in north_only] == [("boris", ((north, "n1"),))]


def test_keyset_pages_and_csv_one_line_per_patient(engine: Engine) -> None:
    city, _ = _seed(engine)
    with session_scope(engine) as session:
        first = search_access(session, AccessQuery(limit=1))
        second = search_access(session, AccessQuery(limit=1, before_id=first[0].id))
        assert [first[0].username, second[0].username] == ["boris", "anna"]
        out = io.StringIO()
        write_csv(iter_access(session, AccessQuery(username="anna")), out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "entry_id,at,username,route,source_id,patient_fhir_id"
    assert [line.split(",")[2:] for line in lines[1:]] == [
        ["anna", "ui.worklist", str(city), "p1"],
        ["anna", "ui.worklist", str(city), "p2"],
    ]


def test_an_id_a_spreadsheet_would_run_is_quoted_in_the_csv(engine: Engine) -> None:
    """A FHIR id may start with '-' (``[A-Za-z0-9\\-\\.]{1,64}``): the EHR chooses it, a spreadsheet would
    read ``-2+3`` as a formula."""
    with session_scope(engine) as session:
        city = make_source(session, "city").id or 0
        record_view(session, user="anna", route="ui.case", patients=[(city, "-2+3"), (city, "p-1")])
        out = io.StringIO()
        write_csv(iter_access(session, AccessQuery()), out)
    assert [line.split(",")[-1] for line in out.getvalue().splitlines()[1:]] == ["'-2+3", "p-1"]
