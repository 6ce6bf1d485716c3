"""deps.log_view: the one way pages and API answers write the access log, committed at once."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.access.models import AccessLogEntry, AccessLogPatient
from discharge_bridge.deps import log_view
from discharge_bridge.users.principal import Principal, Via
from discharge_bridge.users.roles import Role
from tests.support.factories import make_source

ANNA = Principal(username="anna", display_name="Anna", role=Role.coordinator, source_ids=None, via=Via.session)


def test_a_view_is_in_the_log_before_the_request_ends_and_an_empty_one_writes_nothing(engine: Engine) -> None:
    with Session(engine) as setup:
        source_id = make_source(setup).id or 0
        setup.commit()
    request = Session(engine)
    try:
        log_view(request, ANNA, "ui.case", [(source_id, "p1"), (source_id, "p1"), (source_id, "p2")])
        log_view(request, ANNA, "ui.worklist", [])
        with Session(engine) as other:  # another connection sees it while the request's session lives on
            entries = other.exec(select(AccessLogEntry)).all()
            shown = other.exec(select(AccessLogPatient.patient_fhir_id)).all()
        assert [(e.username, e.route, e.patient_count) for e in entries] == [("anna", "ui.case", 2)]
        assert sorted(shown) == ["p1", "p2"]
    finally:
        request.close()
