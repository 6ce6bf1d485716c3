"""What the contact log does to the action plan.

* A relative or guardian **reached** or who **agreed to care** completes the case's open "find"
  tasks they answer: "find the child's parent or guardian" only for a parent or guardian (the
  source mapping's ``guardian_relationships``, the same test the no_guardian flag uses), "find
  relatives" for any family member (not a friend or neighbour). The task's reason is the contact's
  name: system text stored in a task would be read in one language by readers of both.
* When no one is found, the plan offers the next step as a task, **once per case**: a request to
  the guardianship authority for a child (under the mapping's ``child_under``) or an adult flagged
  with dementia (who may lack legal capacity), otherwise a request to social protection. The
  search ends with no one when a coordinator says so ("no relatives found"), or when a find task
  is open and every contact of the case is exhausted: a wrong number or a refusal, or
  ``NO_ANSWER_LIMIT`` unanswered attempts since the last answer. The open find tasks then end as
  failed.

Tasks move only along the FHIR Task transitions (``update_task``), so each step is on the timeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from discharge_bridge.cases.assessment import case_flags
from discharge_bridge.cases.contacts.models import ContactLogEntry, ContactOutcome
from discharge_bridge.cases.contacts.relationships import KINSHIP, V3_ROLE_CODE, Relationship, is_family
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.repository import latest_risk
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskDomain, TaskKind, TaskPriority, TaskStatus
from discharge_bridge.cases.tasks.service import create_task, update_task
from discharge_bridge.fhir.fields import Code
from discharge_bridge.risk import loading
from discharge_bridge.risk.mapping import Mapping
from discharge_bridge.sources.models import Source

FIND_KINDS = (TaskKind.find_guardian, TaskKind.find_relatives)
NEXT_STEP_KINDS = (TaskKind.guardianship, TaskKind.social_services)
FOUND = frozenset({ContactOutcome.reached, ContactOutcome.agreed_to_care})
ANSWERED = frozenset({ContactOutcome.reached, ContactOutcome.agreed_to_care, ContactOutcome.will_visit})
DEAD_END = frozenset({ContactOutcome.wrong_number, ContactOutcome.refused})
KIN_ROLES = frozenset({"N", "NOK"})  # next of kin (v2-0131, v3 RoleClass): family by definition
NO_ANSWER_LIMIT = 3  # unanswered calls to one person before the search counts them out
NEXT_STEP_DUE = timedelta(days=1)
FIND_RELATIVES_TEXT = "Find relatives or other people who can help"  # a find_relatives task's usual words
# The descriptions of the tasks the plan creates (ui/case_labels.SYSTEM_TASKS shows them translated).
NEXT_STEP_TEXT = {
    TaskKind.guardianship: "Request to the guardianship authority: no parent, guardian or relative could be found",
    TaskKind.social_services: "Request to social protection: no relatives could be found to care for the patient",
}


def mapping_of(session: Session, case: Case, mappings_dir: Path) -> Mapping:
    source = session.get(Source, case.source_id)
    assert source is not None  # the case's foreign key
    return loading.mapping(source.mapping, mappings_dir)


def open_find_tasks(session: Session, case_id: int) -> list[Task]:
    query = select(Task).where(
        Task.case_id == case_id,
        col(Task.kind).in_(FIND_KINDS),
        col(Task.status).in_(TASK_TRANSITIONS.active),
    )
    return list(session.exec(query.order_by(col(Task.id))))


def answers(task: Task, relationship: Relationship, mapping: Mapping) -> bool:
    """Whether finding this person ends the task's search. A kinship read from the EHR's words
    ("mother" beside a v2-0131 role code) counts as its v3 RoleCode."""
    if task.kind == TaskKind.find_guardian:
        said = list(relationship.codes)
        if relationship.code in KINSHIP:
            said.append(Code(V3_ROLE_CODE, relationship.code))
        return mapping.guardian_relationships.first_match(said) is not None
    return relationship.code in KIN_ROLES or (relationship.code in KINSHIP and is_family(relationship))


def _finish(session: Session, case: Case, task: Task, status: TaskStatus, reason: str | None, actor: str) -> None:
    """Move an open task to a final status, through in-progress when the table requires it."""
    if status not in TASK_TRANSITIONS.allowed(task.status):
        update_task(session, case, task, actor=actor, expected_version=task.version, status=TaskStatus.in_progress)
    update_task(session, case, task, actor=actor, expected_version=task.version, status=status, status_reason=reason)


def complete_found(
    session: Session,
    case: Case,
    *,
    relationship: Relationship,
    name: str,
    outcome: ContactOutcome,
    actor: str,
    mappings_dir: Path,
) -> list[int]:
    """Complete the open find tasks this contact answers; their ids."""
    if outcome not in FOUND:
        return []
    assert case.id is not None
    tasks = open_find_tasks(session, case.id)
    if not tasks:
        return []
    mapping = mapping_of(session, case, mappings_dir)
    done = []
    for task in tasks:
        if answers(task, relationship, mapping):
            _finish(session, case, task, TaskStatus.completed, name, actor)
            done.append(task.id or 0)
    return done


def exhausted(entries: Sequence[ContactLogEntry]) -> bool:
    """One contact's attempts, oldest first: after the last answer, a dead end (wrong number,
    refusal) or NO_ANSWER_LIMIT unanswered attempts."""
    unanswered, dead = 0, False
    for entry in entries:
        outcome = ContactOutcome(entry.outcome)
        if outcome in ANSWERED:
            unanswered, dead = 0, False
        elif outcome in DEAD_END:
            dead = True
        elif outcome == ContactOutcome.no_answer:
            unanswered += 1
    return dead or unanswered >= NO_ANSWER_LIMIT


def everyone_exhausted(contact_refs: Iterable[str], log: Sequence[ContactLogEntry]) -> bool:
    """True when the case has at least one contact and every one of them is exhausted."""
    refs = list(contact_refs)
    by_ref: dict[str, list[ContactLogEntry]] = {}
    for entry in sorted(log, key=lambda e: (e.at, e.id or 0)):
        by_ref.setdefault(entry.contact_ref, []).append(entry)
    return bool(refs) and all(exhausted(by_ref.get(ref, [])) for ref in refs)


def next_step_kind(session: Session, case: Case, mappings_dir: Path) -> TaskKind:
    """The guardianship authority for a child or an adult who may lack capacity; else social protection."""
    assert case.id is not None
    risk = latest_risk(session, case)
    child_under = mapping_of(session, case, mappings_dir).ages.child_under
    child = risk is not None and risk.age is not None and risk.age < child_under
    had_guardian_search = (
        session.exec(select(Task.id).where(Task.case_id == case.id, Task.kind == TaskKind.find_guardian)).first()
        is not None
    )
    if child or had_guardian_search or "dementia" in case_flags(session, case):
        return TaskKind.guardianship
    return TaskKind.social_services


def existing_next_step(session: Session, case_id: int) -> Task | None:
    query = select(Task).where(Task.case_id == case_id, col(Task.kind).in_(NEXT_STEP_KINDS)).order_by(col(Task.id))
    return session.exec(query).first()


def offer_next_step(
    session: Session, case: Case, *, actor: str, reason: str | None, mappings_dir: Path, now: datetime
) -> tuple[Task, bool, list[int]]:
    """The next-step task (created unless the case already has one) and the find tasks ended as failed
    (with ``reason``: the coordinator's words, when they gave some)."""
    assert case.id is not None
    existing = existing_next_step(session, case.id)
    if existing is not None:
        return existing, False, []
    failed = []
    for task in open_find_tasks(session, case.id):
        _finish(session, case, task, TaskStatus.failed, reason, actor)
        failed.append(task.id or 0)
    kind = next_step_kind(session, case, mappings_dir)
    task = create_task(
        session,
        case,
        actor=actor,
        kind=kind,
        domain=TaskDomain.legal if kind == TaskKind.guardianship else TaskDomain.social,
        priority=TaskPriority.urgent if kind == TaskKind.guardianship else TaskPriority.routine,
        description=NEXT_STEP_TEXT[kind],
        due_at=now + NEXT_STEP_DUE,
        now=now,
    )
    return task, True, failed
