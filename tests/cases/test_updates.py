"""Changing a case from its header: the rules the API's PATCH and the page's forms share."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from discharge_bridge.cases.errors import CaseClosed, InvalidInput, StaleVersion
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.models import CaseOutcome, CaseStatus
from discharge_bridge.cases.updates import update_case
from discharge_bridge.db import session_scope
from tests.support.factories import flagged_case, make_source, make_user


def test_an_outcome_goes_only_with_a_close_or_cancel(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        with pytest.raises(InvalidInput) as err:
            update_case(session, case, {"status": CaseStatus.open, "outcome": CaseOutcome.other}, actor="anna")
        assert err.value.loc == ("body", "outcome")
        assert update_case(session, case, {"status": CaseStatus.closed, "outcome": CaseOutcome.other}, actor="anna")
        assert case.status == CaseStatus.closed


def test_a_closed_case_takes_only_a_reopen_and_then_the_rest(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        update_case(session, case, {"status": CaseStatus.cancelled}, actor="anna")
        session.flush()
        for values in ({"keep_reason": "the family asked"}, {"coordinator": "bob"}, {"same_person": "p2"}):
            with pytest.raises(CaseClosed):
                update_case(session, case, values, actor="anna")
        assert update_case(session, case, {"status": CaseStatus.open, "coordinator": "bob"}, actor="anna")
        assert (case.status, case.coordinator) == (CaseStatus.open, "bob")
        assert [e.kind for e in timeline(session, case.id or 0)][-2:] == ["status_changed", "assigned"]


def test_the_page_may_name_only_a_coordinator_of_the_hospital(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        make_user(session, "anna", password=None)
        with pytest.raises(InvalidInput, match="'mallory' is not a coordinator of this hospital"):
            update_case(session, case, {"coordinator": "mallory"}, actor="anna", coordinators_only=True)
        assert update_case(session, case, {"coordinator": "anna"}, actor="lead", coordinators_only=True)
        assert update_case(session, case, {"coordinator": None}, actor="lead", coordinators_only=True)
        assert update_case(session, case, {"coordinator": "mallory"}, actor="lead")  # the API names anyone


def test_a_stale_version_changes_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        with pytest.raises(StaleVersion):
            update_case(session, case, {"coordinator": "bob"}, actor="anna", expected_version=case.version + 1)
        assert case.coordinator is None
