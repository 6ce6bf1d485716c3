"""Dead letters as hospital IT reads them: the resource, the field at fault, and the record itself
with the person's identity withheld.

The field at fault is read from the stored reason, which ingest writes as ``Type.path: what is
wrong`` (``Patient.birthDate: '1950-13-45' is not a valid FHIR date``), ``Type has no field ...``
(``Encounter has no subject reference to a Patient``) or ``resourceType: ...``; a line of a file
that is not JSON names the file and line instead. A reason in none of these shapes has no field.

The record is shown to find what the EHR sent wrong, not whom it is about: the elements that say
who the person is (name, identifiers, phone, address, birth date, contacts, photo, narrative) are
replaced by a placeholder, so the page shows the record's shape without showing the patient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlmodel import Session

from discharge_bridge.connections.status import get_dead_letter
from discharge_bridge.ingest.models import DeadLetter
from discharge_bridge.sources.models import Source

WITHHELD = "•••"
# Elements of any resource that say who a person is (Patient, RelatedPerson, Practitioner...).
IDENTITY_ELEMENTS = frozenset({"name", "telecom", "address", "birthDate", "contact", "photo", "text"})
SHOWN_MAX = 20_000  # characters of a record shown; the rest is said to be cut

_PATH = re.compile(r"^(resourceType|[A-Z][A-Za-z]+(?:\.[A-Za-z_][\w\[\]]*)+):")
_HAS_NO = re.compile(r"^([A-Z][A-Za-z]+) has no (id|[a-z][A-Za-z]*)\b")
_BAD_ID = re.compile(r"^([A-Z][A-Za-z]+) id is not a valid FHIR id")
_LINE = re.compile(r"^(\S+\.(?:ndjson|json|jsonl)) line (\d+):")


@dataclass(frozen=True)
class Fault:
    field: str | None  # Patient.birthDate, Encounter.subject, resourceType
    file: str | None = None  # a record that was not JSON: the file and line it came from
    line: int | None = None


def fault_of(reason: str) -> Fault:
    """Where the stored reason says the record went wrong (see the module's note)."""
    if found := _PATH.match(reason):
        return Fault(found.group(1))
    if found := _HAS_NO.match(reason):
        return Fault(f"{found.group(1)}.{found.group(2)}")
    if found := _BAD_ID.match(reason):
        return Fault(f"{found.group(1)}.id")
    if found := _LINE.match(reason):
        return Fault(None, found.group(1), int(found.group(2)))
    return Fault(None)


@dataclass(frozen=True)
class LetterRow:
    """One line of the IT page's dead-letter table."""

    id: int
    resource_type: str | None
    fhir_id: str | None
    fault: Fault
    reason: str
    first_seen: datetime
    last_seen: datetime
    count: int
    resolved_at: datetime | None

    @classmethod
    def of(cls, letter: DeadLetter) -> LetterRow:
        assert letter.id is not None
        return cls(
            letter.id,
            letter.resource_type,
            letter.fhir_id,
            fault_of(letter.error),
            letter.error,
            letter.first_seen,
            letter.last_seen,
            letter.count,
            letter.resolved_at,
        )


@dataclass(frozen=True)
class LetterDetail:
    row: LetterRow
    source: Source
    record: str | None  # the stored record as indented JSON, identity withheld; None when not JSON
    record_chars: int  # the stored record's length, whatever its shape
    cut: bool  # the record shown is cut at SHOWN_MAX characters
    withheld: tuple[str, ...]  # the paths whose values were withheld


def withhold_identity(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """A copy of a FHIR record with the identity elements' values replaced (any depth), and their paths.

    An identifier keeps its system and type (which identifier it is) but not its value."""
    withheld: list[str] = []
    if isinstance(value, list):
        items = []
        for index, entry in enumerate(value):
            kept, hidden = withhold_identity(entry, f"{path}[{index}]")
            items.append(kept)
            withheld += hidden
        return items, withheld
    if not isinstance(value, dict):
        return value, withheld
    out: dict[str, Any] = {}
    for key, entry in value.items():
        where = f"{path}.{key}" if path else key
        if key in IDENTITY_ELEMENTS and not (key == "text" and isinstance(entry, str)):
            out[key] = WITHHELD
            withheld.append(where)
        elif key == "identifier":
            out[key], hidden = _identifiers(entry, where)
            withheld += hidden
        else:
            out[key], hidden = withhold_identity(entry, where)
            withheld += hidden
    return out, withheld


def _identifiers(entry: Any, where: str) -> tuple[Any, list[str]]:
    items = entry if isinstance(entry, list) else [entry]
    kept: list[Any] = []
    withheld: list[str] = []
    for index, one in enumerate(items):
        at = f"{where}[{index}]" if isinstance(entry, list) else where
        if isinstance(one, dict):
            shown = {k: v for k, v in one.items() if k in ("system", "type", "use")}
            if "value" in one or "assigner" in one:
                shown["value"] = WITHHELD
                withheld.append(f"{at}.value")
            kept.append(shown)
        else:
            kept.append(WITHHELD)
            withheld.append(at)
    return (kept if isinstance(entry, list) else kept[0]), withheld


def letter_detail(session: Session, letter_id: int, *, source_ids: list[int] | None) -> LetterDetail:
    """A dead letter of a visible source (``DeadLetterNotFound`` otherwise), its record withheld as above."""
    letter = get_dead_letter(session, letter_id, source_ids=source_ids)
    source = session.get(Source, letter.source_id)
    assert source is not None
    record: str | None = None
    withheld: list[str] = []
    try:
        parsed = orjson.loads(letter.payload)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict | list):
        kept, withheld = withhold_identity(parsed)
        record = orjson.dumps(kept, option=orjson.OPT_INDENT_2).decode()
    cut = record is not None and len(record) > SHOWN_MAX
    return LetterDetail(
        LetterRow.of(letter),
        source,
        record[:SHOWN_MAX] if record is not None else None,
        len(letter.payload),
        cut,
        tuple(withheld),
    )
