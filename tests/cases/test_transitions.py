"""The one status lifecycle: tables, the order moves are offered in, and the refusal's words."""

from __future__ import annotations

from enum import StrEnum

import pytest

from discharge_bridge.cases.errors import InvalidTransition
from discharge_bridge.cases.handoffs.models import HANDOFF_TRANSITIONS, HandoffStatus
from discharge_bridge.cases.models import CASE_TRANSITIONS, CaseStatus
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, TaskStatus
from discharge_bridge.cases.transitions import Transitions


class Light(StrEnum):
    red = "red"
    green = "green"
    off = "off"


def test_active_and_final_come_from_the_table() -> None:
    assert TASK_TRANSITIONS.final == {TaskStatus.completed, TaskStatus.cancelled, TaskStatus.failed}
    assert HANDOFF_TRANSITIONS.final == {HandoffStatus.completed, HandoffStatus.declined, HandoffStatus.cancelled}
    assert HANDOFF_TRANSITIONS.active == {
        HandoffStatus.proposed,
        HandoffStatus.referred,
        HandoffStatus.accepted,
        HandoffStatus.scheduled,
    }
    assert CASE_TRANSITIONS.final == set() and CASE_TRANSITIONS.allowed("closed") == [CaseStatus.open]


def test_moves_keep_the_tables_order_and_allowed_is_sorted() -> None:
    assert TASK_TRANSITIONS.moves("in-progress") == (
        TaskStatus.completed,
        TaskStatus.on_hold,
        TaskStatus.failed,
        TaskStatus.cancelled,
    )
    assert TASK_TRANSITIONS.allowed(TaskStatus.in_progress) == ["cancelled", "completed", "failed", "on-hold"]
    assert HANDOFF_TRANSITIONS.moves("scheduled") == (
        HandoffStatus.completed,
        HandoffStatus.declined,
        HandoffStatus.cancelled,
    )


def test_a_forbidden_move_names_what_is_allowed() -> None:
    TASK_TRANSITIONS.check("task 7", "requested", TaskStatus.accepted)
    with pytest.raises(InvalidTransition) as err:
        TASK_TRANSITIONS.check("task 7", "completed", "in-progress")
    assert (
        err.value.message
        == "task 7 cannot go from completed to in-progress; allowed from completed: nothing (final status)"
    )
    assert err.value.extra == {"current": "completed", "allowed": []}
    with pytest.raises(InvalidTransition) as err:
        HANDOFF_TRANSITIONS.check("handoff 2", HandoffStatus.proposed, HandoffStatus.completed)
    assert err.value.message.endswith("allowed from proposed: cancelled, referred")


def test_every_status_needs_a_row() -> None:
    with pytest.raises(ValueError, match="Light: no row for off"):
        Transitions(Light, {Light.red: (Light.green,), Light.green: (Light.red,)})
    with pytest.raises(ValueError):
        TASK_TRANSITIONS.moves("done")


def test_the_path_to_a_status_takes_only_allowed_steps_and_is_the_shortest() -> None:
    assert HANDOFF_TRANSITIONS.path(HandoffStatus.proposed, HandoffStatus.scheduled) == [
        HandoffStatus.referred,
        HandoffStatus.accepted,
        HandoffStatus.scheduled,
    ]
    assert TASK_TRANSITIONS.path("requested", "completed") == [TaskStatus.in_progress, TaskStatus.completed]
    assert TASK_TRANSITIONS.path("completed", "in-progress") == []  # final: nowhere to go
    assert TASK_TRANSITIONS.path("accepted", "accepted") == []  # already there
