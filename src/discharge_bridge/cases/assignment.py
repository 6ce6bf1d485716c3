"""Who may be given a case or a task, and who gets a case the sync opens: the hospital's coordinators in
turn, or the coordinator of the ward.

Every write that names a user (a case's coordinator, a task's owner), from the API, a page or the
sync, is checked here against the same rule: a case goes only to an enabled coordinator of its
hospital; a task only to an enabled user of its hospital who may coordinate (its coordinators, and
admins, who see every hospital). A refusal reads the same whether the name is unknown or belongs to
someone who may not take it, so it cannot be used to find out who has an account.

``Source.assignment`` says how:

    {"mode": "round_robin"}                                    (the default)
    {"mode": "ward", "wards": {"<ward>": "<username>"}, "fallback": "round_robin" | "none"}

Round robin is derived from the data, not from a counter: the next case goes to the coordinator
whose newest case (by id, i.e. by when it reached them) is the oldest, and to one who has none
first; ties go by user name. Only enabled coordinators who may see the hospital are in the pool,
so a disabled user or a mapping to someone no longer there falls back instead of failing.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.cases.models import Case
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.sources.models import Source
from discharge_bridge.users.models import User
from discharge_bridge.users.roles import ROLE_PERMISSIONS, Permission, Role
from discharge_bridge.users.service import coordinators_of, visible_sources

log = logging.getLogger(__name__)


class AssignmentMode(StrEnum):
    round_robin = "round_robin"
    ward = "ward"


class WardFallback(StrEnum):
    round_robin = "round_robin"
    none = "none"  # leave the case unassigned when its ward has no coordinator


def _sees(session: Session, username: str, source_id: int, roles: frozenset[Role]) -> bool:
    """Whether ``username`` is an enabled user of one of ``roles`` who may see the hospital ``source_id``."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None or user.disabled or Role(user.role) not in roles:
        return False
    scope = visible_sources(session, user)
    return scope is None or source_id in scope


COORDINATOR_ROLES = frozenset({Role.coordinator})
TASK_OWNER_ROLES = frozenset(role for role, granted in ROLE_PERMISSIONS.items() if Permission.coordinate in granted)


def check_coordinator(session: Session, case: Case, username: str | None) -> None:
    """Raise InvalidInput (``coordinator``) unless ``username`` is None (unassigned) or an enabled
    coordinator of the case's hospital."""
    if username is not None and not _sees(session, username, case.source_id, COORDINATOR_ROLES):
        raise InvalidInput(("body", "coordinator"), f"{username!r} is not an enabled coordinator of this hospital")


def check_task_owner(session: Session, case: Case, username: str | None) -> None:
    """Raise InvalidInput (``owner``) unless ``username`` is None (nobody) or an enabled user of the
    case's hospital whose role may coordinate."""
    if username is not None and not _sees(session, username, case.source_id, TASK_OWNER_ROLES):
        message = f"{username!r} is not an enabled user of this hospital who may coordinate"
        raise InvalidInput(("body", "owner"), message)


class InvalidAssignment(ValueError):
    """An assignment setting that cannot be used; the message says what to fix."""


def parse_assignment(value: dict[str, Any]) -> tuple[AssignmentMode, dict[str, str], WardFallback]:
    """The mode, the ward -> user map and the fallback; raises InvalidAssignment."""
    try:
        mode = AssignmentMode(value.get("mode", AssignmentMode.round_robin))
        fallback = WardFallback(value.get("fallback", WardFallback.round_robin))
    except ValueError as exc:
        raise InvalidAssignment(f"assignment: {exc}") from None
    wards = value.get("wards") or {}
    if not isinstance(wards, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in wards.items()):
        raise InvalidAssignment("assignment.wards must map ward names to user names")
    if mode == AssignmentMode.ward and not wards:
        raise InvalidAssignment("ward assignment needs at least one ward: --ward USER=WARD")
    return mode, {k.strip(): v.strip() for k, v in wards.items()}, fallback


class CoordinatorPicker:
    """Chooses coordinators for the cases opened in one transaction (the pool is read once, when needed)."""

    def __init__(self, session: Session, source_id: int) -> None:
        self.session = session
        self.source_id = source_id
        self._loaded = False
        self.mode = AssignmentMode.round_robin
        self.fallback = WardFallback.round_robin
        self.wards: dict[str, str] = {}
        self.pool: list[str] = []
        self.last: dict[str, int] = {}

    def _load(self) -> None:
        source = self.session.get(Source, self.source_id)
        assert source is not None
        try:
            self.mode, wards, self.fallback = parse_assignment(source.assignment)
        except InvalidAssignment as exc:
            # Saved settings are validated; a row edited by hand must not stop cases from opening.
            log.warning("source %s: %s; assigning round robin", source.name, exc)
            wards = {}
        self.wards = {ward.casefold(): user for ward, user in wards.items()}
        self.pool = [u.username for u in coordinators_of(self.session, self.source_id)]
        self.last = {name: -1 for name in self.pool}
        if self.pool:  # with none, the query would still walk every case of the hospital
            newest = (
                select(Case.coordinator, func.max(Case.id))
                .where(Case.source_id == self.source_id, col(Case.coordinator).in_(self.pool))
                .group_by(col(Case.coordinator))
            )
            self.last.update({str(name): last or 0 for name, last in self.session.exec(newest)})
        self._loaded = True

    def __call__(self, case: Case) -> str | None:
        """The coordinator for this new case, or None (no coordinator, or no ward match without fallback)."""
        if not self._loaded:
            self._load()
        chosen: str | None = None
        if self.mode == AssignmentMode.ward:
            ward = self.session.exec(
                select(EncounterSnapshot.ward).where(
                    EncounterSnapshot.source_id == self.source_id,
                    EncounterSnapshot.fhir_id == case.encounter_fhir_id,
                )
            ).first()
            mapped = self.wards.get(ward.strip().casefold()) if ward else None
            if mapped in self.pool:
                chosen = mapped
            elif self.fallback == WardFallback.none:
                return None
        if chosen is None and self.pool:
            chosen = min(self.pool, key=lambda name: (self.last[name], name))
        if chosen is not None:
            self.last[chosen] = case.id or 0
        return chosen
