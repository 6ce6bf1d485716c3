"""Hospital stays from a patient's Encounters: the unit a coordinator follows. Pure.

EHRs send one stay in several shapes; these rules make one stay of them:

1. **partOf chains.** An Encounter ``partOf`` another is a leg of it (R4: "Another Encounter of which
   this encounter is a part of (administratively or in time)", e.g. a ward stay inside the admission).
   Every Encounter linked through ``partOf``, up to the top of the chain, is one stay. A parent that
   has not arrived yet still joins its legs, through the id in their references.
2. **Transfers without a link.** An inpatient Encounter that ended (status ``finished`` or a
   ``period.end``) followed by another inpatient Encounter of the same patient, starting no later
   than ``transfer_gap_hours`` after it (mapping ``encounters:``), is the same stay when the new one
   came by transfer (``hospitalization.admitSource`` in ``transfer_admit_sources``) or the first
   one was not discharged anywhere (no ``dischargeDisposition``).
3. **Overlaps.** Inpatient Encounters of one person whose periods overlap (one has not ended when the
   other starts) are one stay: nobody is admitted twice at once. This joins the copies of one stay
   on two records of a merged patient (``Patient.link``), and ward legs sent without any link.
4. Location changes inside one Encounter are one leg; nothing to group.

Only inpatient Encounters of a current or ended kind make stays; cancelled and entered-in-error ones
are no stay at all. A stay's **current leg** stands for it (ward, bed, readiness, the assessment
and the case): the newest-starting leg that has not ended, a child leg before its parent; when every
leg has ended, the last to end. The stay has ended when its current leg has (``finished`` or
``period.end`` in the past, whatever the status says: EHRs close the period first and flip the
status in a later batch).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from discharge_bridge.fhir.fields import codes, encounter_status, loose_reference_id, period, text
from discharge_bridge.risk.evidence import is_inpatient
from discharge_bridge.risk.mapping import Mapping

NOT_A_STAY = frozenset({"cancelled", "entered-in-error"})
NO_DATE = datetime.min.replace(tzinfo=UTC)  # a finished leg with no dates: ended, when unknown


@dataclass(frozen=True)
class Stay:
    legs: tuple[dict[str, Any], ...]  # ordered by start
    current: dict[str, Any]  # the leg that stands for the stay
    ended_at: datetime | None  # None while the stay goes on

    @property
    def leg_ids(self) -> tuple[str, ...]:
        return tuple(text(leg.get("id")) for leg in self.legs)

    @property
    def current_id(self) -> str:
        return text(self.current.get("id"))


def leg_ended(encounter: dict[str, Any], now: datetime) -> datetime | None:
    """When a leg ended: its ``period.end`` (if past) or, when ``finished`` without one, its start."""
    start, end = period(encounter)
    if end is not None and end <= now:
        return end
    if encounter_status(encounter) == "finished":
        return end or start or NO_DATE
    return None


class _Groups:
    """Union-find over encounter ids (and the ids their partOf references name)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _transfer_like(later: dict[str, Any], earlier: dict[str, Any], mapping: Mapping) -> bool:
    hosp = later.get("hospitalization")
    admit = {c.code.lower() for c in codes(hosp.get("admitSource"))} if isinstance(hosp, dict) else set()
    if admit & {s.lower() for s in mapping.encounters.transfer_admit_sources}:
        return True
    before = earlier.get("hospitalization")
    return not (isinstance(before, dict) and codes(before.get("dischargeDisposition")))


def group_stays(encounters: Iterable[dict[str, Any]], mapping: Mapping, *, now: datetime) -> list[Stay]:
    """The stays among one patient's Encounters (other classes and cancelled ones are left out)."""
    legs = [
        e
        for e in encounters
        if isinstance(e, dict)
        and text(e.get("id"))
        and encounter_status(e) not in NOT_A_STAY
        and encounter_status(e) != "planned"
        and is_inpatient(e, mapping)
    ]
    groups = _Groups()
    for leg in legs:
        own = text(leg.get("id"))
        groups.find(own)
        parent = loose_reference_id(leg.get("partOf"), "Encounter")
        if parent:
            groups.join(own, parent)
    by_start = sorted(legs, key=lambda e: (period(e)[0] or NO_DATE, text(e.get("id"))))
    gap = timedelta(hours=mapping.encounters.transfer_gap_hours)
    for i, later in enumerate(by_start):
        started = period(later)[0]
        if started is None:
            continue
        for earlier in by_start[:i]:
            ended = leg_ended(earlier, now)
            if ended is None or (ended != NO_DATE and ended > started):
                # Overlapping inpatient Encounters of one person: one person is not admitted twice at
                # once (the same stay on two records of a merged patient, a ward leg sent unlinked).
                groups.join(text(later.get("id")), text(earlier.get("id")))
                continue
            if ended is None or ended == NO_DATE or not (started - gap <= ended <= started + gap):
                continue
            if _transfer_like(later, earlier, mapping):
                groups.join(text(later.get("id")), text(earlier.get("id")))
    members: dict[str, list[dict[str, Any]]] = {}
    for leg in by_start:
        members.setdefault(groups.find(text(leg.get("id"))), []).append(leg)
    return [_stay(tuple(group), now) for group in members.values()]


def _stay(legs: tuple[dict[str, Any], ...], now: datetime) -> Stay:
    going_on = [leg for leg in legs if leg_ended(leg, now) is None]
    if going_on:
        # A child leg (a ward) stands for the stay before the parent admission that contains it.
        newest = max(
            going_on,
            key=lambda e: (
                bool(loose_reference_id(e.get("partOf"), "Encounter")),
                period(e)[0] or NO_DATE,
                text(e.get("id")),
            ),
        )
        return Stay(legs, newest, None)
    last = max(legs, key=lambda e: (leg_ended(e, now) or NO_DATE, text(e.get("id"))))
    return Stay(legs, last, leg_ended(last, now))


def is_deceased(patient: dict[str, Any]) -> bool:
    """``deceasedBoolean`` true or any ``deceasedDateTime``: coordination ends (R4 Patient.deceased[x])."""
    return patient.get("deceasedBoolean") is True or bool(text(patient.get("deceasedDateTime")))


def stay_of(encounter_id: str, stays: Iterable[Stay]) -> Stay | None:
    return next((s for s in stays if encounter_id in s.leg_ids), None)
