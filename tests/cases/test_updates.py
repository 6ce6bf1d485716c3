"""Changing a case from its header: the rules the API's PATCH and the page's forms share."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from discharge_bridge.cases.errors import CaseClosed, InvalidInput, StaleVersion
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.models import Case, CaseOutcome, CaseStatus
from discharge_bridge.cases.updates import update_case
from discharge_bridge.db import session_scope
from discharge_bridge.users.service import disable_user
from tests.support.factories import flagged_case, make_source, make_user


def _case_with_people(session: Session) -> Case:
    """A case of "city", its coordinators bob and anna, and people who may not take it."""
    case = flagged_case(session, make_source(session).id or 0)
    make_source(session, "north")
    make_user(session, "bob")
    make_user(session, "anna")
    make_user(session, "nora", sources=("north",))  # a coordinator of another hospital
    make_user(session, "boris", "bed_manager")
    make_user(session, "irina", "it_admin")
    make_user(session, "root", "admin")
    make_user(session, "gone")
    disable_user(session, "gone")
    return case


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
        case = _case_with_people(session)
        update_case(session, case, {"status": CaseStatus.cancelled}, actor="anna")
        session.flush()
        for values in ({"keep_reason": "the family asked"}, {"coordinator": "bob"}, {"same_person": "p2"}):
            with pytest.raises(CaseClosed):
                update_case(session, case, values, actor="anna")
        assert update_case(session, case, {"status": CaseStatus.open, "coordinator": "bob"}, actor="anna")
        assert (case.status, case.coordinator) == (CaseStatus.open, "bob")
        assert [e.kind for e in timeline(session, case.id or 0)][-2:] == ["status_changed", "assigned"]


def test_only_an_enabled_coordinator_of_the_hospital_may_be_given_the_case(engine: Engine) -> None:
    """One rule for the API, the page and any other caller: nobody else, and the same words whether the
    name is unknown or belongs to someone who may not take the case (no way to probe for user names)."""
    with session_scope(engine) as session:
        case = _case_with_people(session)
        messages = {}
        for name in ("mallory", "nora", "boris", "irina", "root", "gone"):
            with pytest.raises(InvalidInput) as err:
                update_case(session, case, {"coordinator": name}, actor="anna")
            assert err.value.loc == ("body", "coordinator")
            messages[name] = err.value.message.replace(repr(name), "NAME")
            assert case.coordinator is None
        assert set(messages.values()) == {"NAME is not an enabled coordinator of this hospital"}
        assert update_case(session, case, {"coordinator": "anna"}, actor="lead")
        assert update_case(session, case, {"coordinator": None}, actor="lead")  # unassigned is allowed
        assert [e.kind for e in timeline(session, case.id or 0)][-2:] == ["assigned", "assigned"]


def test_the_coordinator_a_case_already_has_is_not_checked_again(engine: Engine) -> None:
    """A coordinator disabled since keeps the case until someone moves it; re-sending the name changes nothing."""
    with session_scope(engine) as session:
        case = _case_with_people(session)
        update_case(session, case, {"coordinator": "bob"}, actor="lead")
        disable_user(session, "bob")
        assert not update_case(session, case, {"coordinator": "bob", "keep_reason": None}, actor="lead")
        with pytest.raises(InvalidInput):
            update_case(session, case, {"coordinator": "gone"}, actor="lead")
        assert case.coordinator == "bob"


def test_a_stale_version_changes_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = _case_with_people(session)
        with pytest.raises(StaleVersion):
            update_case(session, case, {"coordinator": "bob"}, actor="anna", expected_version=case.version + 1)
        assert case.coordinator is None
