"""One person, several Patient records (R4 ``Patient.link``): what the EHR said, and who the person is.

R4 link types (https://hl7.org/fhir/R4/codesystem-link-type.html): ``replaced-by`` (this record is
inactive, merged into the other), ``replaces`` (this record is the survivor of the other), ``refer``
and ``seealso`` (the other may be, or holds more about, the same person). Ingest records the links
of every stored Patient (``record_links``, in the page's transaction); the assessment stage and the
cases resolve a record to its **survivor** (``survivors``) and a survivor to all of its records
(``records_of``). ``seealso``/``refer`` join two records only once a coordinator confirms it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import Table, and_, delete, or_, select, update
from sqlmodel import Session

from discharge_bridge.db import insert_for, utcnow
from discharge_bridge.fhir.fields import reference_id
from discharge_bridge.ingest.models import PatientAlias
from discharge_bridge.ingest.normalise import Normalised

ALIAS: Table = PatientAlias.__table__  # type: ignore[attr-defined]
REPLACED, SEEALSO = "replaced", "seealso"
_MAX_CHAIN = 8  # A merged into B merged into C...: followed this far


def links_of(resource: Any) -> list[tuple[str, str]]:
    """(link type, other Patient id) of a Patient resource; links to RelatedPerson are not people we follow."""
    found = []
    entries = resource.get("link") if isinstance(resource, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            continue
        other = reference_id(entry.get("other"), "Patient")
        if other:
            found.append((entry["type"], other))
    return found


def record_links(session: Session, source_id: int, rows: Iterable[Normalised]) -> set[str]:
    """Store the links of these Patient rows; return every record they name (their person changed)."""
    values: list[dict[str, Any]] = []
    now = utcnow()
    for row in rows:
        if row.resource_type != "Patient":
            continue
        if row.raw is not None:
            raw: Any = row.raw
        elif row.raw_json is not None and '"link"' in row.raw_json:  # most records have none: skip the parse
            raw = orjson.loads(row.raw_json)
        else:
            continue
        for kind, other in links_of(raw):
            if other == row.fhir_id:
                continue
            if kind == "replaced-by":
                pair = (row.fhir_id, other, REPLACED)
            elif kind == "replaces":
                pair = (other, row.fhir_id, REPLACED)
            elif kind in ("seealso", "refer"):
                pair = (row.fhir_id, other, SEEALSO)
            else:
                continue
            values.append(
                {"source_id": source_id, "alias_id": pair[0], "survivor_id": pair[1], "kind": pair[2], "seen_at": now}
            )
    if not values:
        return set()
    stmt = insert_for(session, ALIAS).on_conflict_do_nothing(
        index_elements=["source_id", "alias_id", "survivor_id", "kind"]
    )
    session.execute(stmt, values)
    return {v["alias_id"] for v in values} | {v["survivor_id"] for v in values}


def _joined(source_id: int) -> Any:
    """The alias rows that make two records one person: merges, and confirmed possible duplicates."""
    return and_(
        ALIAS.c.source_id == source_id,
        or_(ALIAS.c.kind == REPLACED, ALIAS.c.confirmed_at.is_not(None)),
    )


def survivors(session: Session, source_id: int, ids: Iterable[str]) -> dict[str, str]:
    """record id -> the record that stands for the person (itself when not merged), following chains."""
    result = {pid: pid for pid in ids}
    pending = set(result)
    for _ in range(_MAX_CHAIN):
        if not pending:
            break
        rows = session.execute(
            select(ALIAS.c.alias_id, ALIAS.c.survivor_id).where(
                _joined(source_id), ALIAS.c.alias_id.in_(sorted(pending))
            )
        ).all()
        step = {alias: survivor for alias, survivor in rows}
        pending = set()
        for pid, current in result.items():
            nxt = step.get(current)
            if nxt is not None and nxt != pid:
                result[pid] = nxt
                pending.add(nxt)
    return result


def records_of(session: Session, source_id: int, survivor_ids: Iterable[str]) -> dict[str, set[str]]:
    """survivor -> every record of that person (the survivor and what was merged into it, transitively)."""
    result = {sid: {sid} for sid in survivor_ids}
    frontier = {sid: {sid} for sid in result}
    for _ in range(_MAX_CHAIN):
        wanted = sorted({pid for ids in frontier.values() for pid in ids})
        if not wanted:
            break
        rows = session.execute(
            select(ALIAS.c.alias_id, ALIAS.c.survivor_id).where(_joined(source_id), ALIAS.c.survivor_id.in_(wanted))
        ).all()
        into: dict[str, set[str]] = {}
        for alias, survivor in rows:
            into.setdefault(survivor, set()).add(alias)
        frontier = {
            sid: {a for pid in ids for a in into.get(pid, ()) if a not in result[sid]} for sid, ids in frontier.items()
        }
        for sid, new in frontier.items():
            result[sid] |= new
    return result


def possible_duplicates(session: Session, source_id: int, patient_id: str) -> list[str]:
    """Records the EHR says may be the same person as this one (``seealso``/``refer``), not yet confirmed."""
    rows = session.execute(
        select(ALIAS.c.alias_id, ALIAS.c.survivor_id).where(
            ALIAS.c.source_id == source_id,
            ALIAS.c.kind == SEEALSO,
            ALIAS.c.confirmed_at.is_(None),
            or_(ALIAS.c.alias_id == patient_id, ALIAS.c.survivor_id == patient_id),
        )
    ).all()
    return sorted({b if a == patient_id else a for a, b in rows})


def confirm_same_person(session: Session, source_id: int, keep_id: str, other_id: str, *, actor: str) -> bool:
    """A coordinator confirms a possible duplicate: ``other_id`` joins ``keep_id`` (the record of the case).

    False when the EHR never named the pair as possibly the same person.
    """
    pair = and_(
        ALIAS.c.source_id == source_id,
        ALIAS.c.kind == SEEALSO,
        or_(
            and_(ALIAS.c.alias_id == other_id, ALIAS.c.survivor_id == keep_id),
            and_(ALIAS.c.alias_id == keep_id, ALIAS.c.survivor_id == other_id),
        ),
    )
    if session.execute(select(ALIAS.c.id).where(pair)).first() is None:
        return False
    session.execute(delete(ALIAS).where(pair, ALIAS.c.alias_id == keep_id))
    values = {"source_id": source_id, "alias_id": other_id, "survivor_id": keep_id, "kind": SEEALSO}
    exists = session.execute(select(ALIAS.c.id).where(*(ALIAS.c[k] == v for k, v in values.items()))).first()
    if exists is None:
        session.execute(ALIAS.insert().values(**values, seen_at=utcnow()))
    session.execute(
        update(ALIAS)
        .where(*(ALIAS.c[k] == v for k, v in values.items()))
        .values(confirmed_at=utcnow(), confirmed_by=actor)
    )
    return True
