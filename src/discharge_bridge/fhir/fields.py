"""Readers of the FHIR R4 JSON fields the service uses, as EHRs really send them.

Nothing here raises on shape: a bare Coding where a CodeableConcept is due, a list where one
item is due, empty strings, `null` inside lists and missing fields all read as "nothing here".
Checking a value the service relies on (and dead-lettering a resource over it) is the
normaliser's business (`ingest/normalise.py`), on top of these readers.

Codes and references have two readings each, on purpose:

* *as sent* (`codings`, `first_code`, `class_code`, `reference_id`): what the EHR wrote, for a
  stored column and the filters that decide what is kept; a reference must name a valid FHIR id;
* *normalised* (`codes`, `code_values`, `encounter_class_codes`, `loose_reference_id`):
  stripped, lower-cased where it says so, a bare code string accepted, for matching in the risk
  core (mapping code sets, statuses, `partOf` links).

Dates have two readings too, from one parser (partial dates, a missing zone): `parse_instant`
gives a UTC instant and reads a zone-less value in the hospital's time zone (ingest: cursors,
stored periods); `parse_datetime` keeps the EHR's own offset (UTC when none), so that
`.date()` is the date the EHR wrote (risk: age at admission, days between stays).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

# FHIR R4 id and resource type grammars: https://hl7.org/fhir/R4/datatypes.html#id
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


# --- shapes ---------------------------------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    """One item or a list, `None` items dropped."""
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (tolerates junk where an object is due)."""
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str:
    """A stripped string, or "" for anything that is not a non-empty string."""
    return value.strip() if isinstance(value, str) else ""


# --- codes, normalised ----------------------------------------------------------------------------


class Code(NamedTuple):
    """One Coding. A NamedTuple, not a dataclass: millions are made per scoring pass and a
    tuple is several times cheaper to build than a frozen dataclass."""

    system: str
    code: str
    display: str = ""


def codes(value: Any) -> list[Code]:
    """Codings of a CodeableConcept, a bare Coding, a list of either, or a plain code string."""
    out: list[Code] = []
    _collect_codes(value, out)
    return out


def _collect_codes(value: Any, out: list[Code]) -> None:
    # The hottest reader of the risk core: no per-level lists, `text()` inlined, and the usual
    # CodeableConcept ({"coding": [Coding, ...]}) read in one frame; anything odder (a string,
    # a `coding` inside a `coding`) takes the general path, so the result is as before.
    for item in value if isinstance(value, list) else (value,):
        if isinstance(item, dict):
            if "coding" in item:
                inner = item["coding"]
                for coding in inner if isinstance(inner, list) else (inner,):
                    if isinstance(coding, dict) and "coding" not in coding:
                        _add_code(coding, out)
                    else:
                        _collect_codes(coding, out)
            else:
                _add_code(item, out)
        elif isinstance(item, str) and (item := item.strip()):
            out.append(Code("", item))


def _add_code(coding: dict[str, Any], out: list[Code]) -> None:
    code = coding.get("code")
    if isinstance(code, str) and (code := code.strip()):
        system, display = coding.get("system"), coding.get("display")
        out.append(
            Code(
                system.strip() if isinstance(system, str) else "",
                code,
                display.strip() if isinstance(display, str) else "",
            )
        )


def code_values(value: Any) -> set[str]:
    """Bare codes of a status-like element, system ignored, lower-cased."""
    out: set[str] = set()
    _collect_values(value, out)
    return out


def _collect_values(value: Any, out: set[str]) -> None:
    # `codes()` without building Codes (same walk): every Condition's two statuses are read by
    # facts and by LACE.
    for item in value if isinstance(value, list) else (value,):
        if isinstance(item, dict):
            if "coding" in item:
                inner = item["coding"]
                for coding in inner if isinstance(inner, list) else (inner,):
                    if isinstance(coding, dict) and "coding" not in coding:
                        code = coding.get("code")
                        if isinstance(code, str) and (code := code.strip()):
                            out.add(code.lower())
                    else:
                        _collect_values(coding, out)
            else:
                code = item.get("code")
                if isinstance(code, str) and (code := code.strip()):
                    out.add(code.lower())
        elif isinstance(item, str) and (item := item.strip()):
            out.add(item.lower())


def encounter_class_codes(encounter: dict[str, Any]) -> set[str]:
    """Class codes of an Encounter: one Coding in R4, CodeableConcepts in R5; both accepted."""
    return {c.code for c in codes(encounter.get("class"))}


def encounter_status(encounter: dict[str, Any]) -> str:
    return text(encounter.get("status")).lower()


# --- codes, as sent -------------------------------------------------------------------------------


def codings(value: Any) -> list[dict[str, Any]]:
    """The Codings inside a CodeableConcept, a bare Coding, or a list of either."""
    if isinstance(value, list):
        return [c for item in value for c in codings(item)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        inner = value.get("coding")
        return [c for c in inner if isinstance(c, dict)] if isinstance(inner, list) else []
    return [value] if "code" in value else []


def first_code(value: Any) -> str | None:
    """The first non-empty code string of ``codings(value)``, as sent."""
    if isinstance(value, dict) and isinstance(inner := value.get("coding"), list):
        # the usual CodeableConcept, without building the list ``codings`` returns (hot path)
        for coding in inner:
            if isinstance(coding, dict) and isinstance(code := coding.get("code"), str) and code:
                return code
        return None
    for coding in codings(value):
        code = coding.get("code")
        if isinstance(code, str) and code:
            return code
    return None


def class_code(encounter: dict[str, Any]) -> str | None:
    """``Encounter.class`` as one code: R4's one Coding, R5's list of CodeableConcepts, or a bare
    code string some EHRs send."""
    value = encounter.get("class")
    return (value or None) if isinstance(value, str) else first_code(value)


# --- references -----------------------------------------------------------------------------------


def reference_id(ref: Any, expected_type: str) -> str | None:
    """The logical id in ``{"reference": "Patient/123"}`` (relative, absolute or versioned) when it
    names an ``expected_type`` by a valid FHIR id; None otherwise (contained ``#`` references too)."""
    if not isinstance(ref, dict):
        return None
    value = ref.get("reference")
    if not isinstance(value, str) or not value or value.startswith("#"):
        return None
    kind, _, rest = value.partition("/")
    if kind == expected_type and "/" not in rest:  # the usual relative "Patient/123" (hot path)
        return rest if FHIR_ID.match(rest) else None
    parts = value.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == expected_type and FHIR_ID.match(parts[-1]):
        return parts[-1]
    return None


def loose_reference_id(value: Any, rtype: str) -> str:
    """The id in a Reference to an ``rtype`` (`Encounter/5`, an absolute URL, stray spaces or a
    trailing slash tolerated) or the whole `urn:uuid:...`; "" when none."""
    if not isinstance(value, dict):
        return ""
    ref = text(value.get("reference"))
    if not ref:
        return ""
    if ref.startswith("urn:uuid:"):
        return ref
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == rtype else ""


def typed_ref(resource: dict[str, Any], rtype: str) -> str:
    """`Type/id` of a resource, `Type/?` when it has no id; its own resourceType, when it has the
    key, wins over ``rtype`` (and the resource is not copied to add one)."""
    declared = resource.get("resourceType", rtype)
    rid = resource.get("id")
    return f"{text(declared) or 'Resource'}/{(rid.strip() if isinstance(rid, str) else '') or '?'}"


def owner_of(resource: dict[str, Any]) -> str | None:
    """The Patient a raw resource is about (itself, for a Patient), read before it is normalised:
    push and backfill decide from it whether a resource belongs to a followed stay."""
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    field = "patient" if rtype == "RelatedPerson" else "subject"
    return reference_id(resource.get(field), "Patient")


# --- dates and instants ---------------------------------------------------------------------------


def zone(name: str | None) -> tzinfo:
    """A hospital's time zone by IANA name (UTC when none)."""
    return ZoneInfo(name) if name and name != "UTC" else UTC


def _read_datetime(raw: str) -> datetime | None:
    """A FHIR date / dateTime / instant as written (naive when it has no zone); None if unreadable.

    A date-only value (`2024-03-01`) reads as its midnight; partial dates (`2024`, `2024-03`)
    read as their first day.
    """
    if len(raw) == 4 and raw.isdigit():
        raw = f"{raw}-01-01"
    elif len(raw) == 7 and raw[4] == "-":
        raw = f"{raw}-01"
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time())
        return datetime.fromisoformat(raw)  # Python 3.11 reads a trailing Z itself
    except ValueError:
        return None


def parse_instant(value: Any, tz: tzinfo = UTC) -> datetime | None:
    """A FHIR date / dateTime / instant as an aware UTC datetime.

    A value without a zone is read in the hospital's own time zone (``tz``): several EHRs drop the
    offset, and reading it as UTC would shift admissions by hours. A bare date means local midnight.
    Returns None for what cannot be read.
    """
    if not isinstance(value, str) or not value:
        return None
    parsed = _read_datetime(value.strip())
    if parsed is None or parsed.tzinfo is UTC:  # most instants: nothing to convert
        return parsed
    try:
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)
    except OverflowError:  # year 1 or 9999 moved across a zone
        return None


def parse_datetime(value: Any) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime in the EHR's own offset (UTC when it sent none).

    Partial dates read as their first day. Unreadable values are None.
    """
    raw = text(value)
    return _parse_datetime(raw) if raw else None


# The same admission's period.start is read by facts, readmission and three LACE components;
# datetimes are immutable, so a small cache of recent strings is safe and saves the re-parsing.
@lru_cache(maxsize=4096)
def _parse_datetime(raw: str) -> datetime | None:
    parsed = _read_datetime(raw.replace("Z", "+00:00"))  # also reads a date with a zone, `2024-03-01Z`
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def period(resource: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """``period.start`` and ``period.end`` read by ``parse_datetime``."""
    p = resource.get("period")
    if not isinstance(p, dict):
        return None, None
    return parse_datetime(p.get("start")), parse_datetime(p.get("end"))


# --- extensions -----------------------------------------------------------------------------------


def extensions(resource: Any) -> Iterator[dict[str, Any]]:
    """The extensions of a resource or element that have a url."""
    if isinstance(resource, dict):
        for ext in as_list(resource.get("extension")):
            if isinstance(ext, dict) and text(ext.get("url")):
                yield ext


def last_segment(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1] or url


# --- people: names, phones, addresses, identifiers --------------------------------------------------
# Shared by the Patient columns (ingest), contacts (Patient.contact, RelatedPerson) and the pages.

_NAME_USES = ("official", "usual", None, "maiden", "nickname", "anonymous", "temp", "old")
_PHONE_USES = ("mobile", "home", None, "work", "temp", "old")
_ADDRESS_USES = ("home", None, "temp", "work", "billing", "old")


def _by_use(items: list[dict[str, Any]], order: tuple[str | None, ...]) -> list[dict[str, Any]]:
    """``items`` ordered by how useful their ``use`` is (unknown uses with "no use"), then by ``rank``."""

    def key(item: dict[str, Any]) -> tuple[int, int]:
        use = item.get("use")
        place = order.index(use) if use in order else order.index(None)
        rank = item.get("rank")
        return place, rank if isinstance(rank, int) and not isinstance(rank, bool) else 1_000

    return sorted(items, key=key)


def human_name(value: Any) -> str:
    """One HumanName (or the best of a list) as text: ``text`` if sent, else "Family Given Given".

    Family name first, as Russian hospital lists write it ("Ivanova Maria Petrovna").
    """
    names = [n for n in as_list(value) if isinstance(n, dict)]
    for name in _by_use(names, _NAME_USES):
        if shown := text(name.get("text")):
            return shown
        parts = [text(name.get("family")), *(text(g) for g in as_list(name.get("given")))]
        if joined := " ".join(p for p in parts if p):
            return joined
    return ""


def phones(value: Any) -> list[str]:
    """Phone numbers of a ``telecom`` list, most useful first (mobile, home, ...); no duplicates."""
    points = [t for t in as_list(value) if isinstance(t, dict) and t.get("system") in ("phone", "sms", None)]
    found: list[str] = []
    for point in _by_use(points, _PHONE_USES):
        number = text(point.get("value"))
        if number and number not in found and (point.get("system") is not None or _looks_like_phone(number)):
            found.append(number)
    return found


def _looks_like_phone(value: str) -> bool:
    return sum(ch.isdigit() for ch in value) >= 5 and "@" not in value


def address_line(value: Any) -> str:
    """One Address (or the best of a list) as one line: ``text`` if sent, else lines, city, postcode."""
    addresses = [a for a in as_list(value) if isinstance(a, dict)]
    for address in _by_use(addresses, _ADDRESS_USES):
        if shown := text(address.get("text")):
            return shown
        parts = [*(text(line) for line in as_list(address.get("line"))), text(address.get("city"))]
        parts.append(text(address.get("postalCode")))
        if joined := ", ".join(p for p in parts if p):
            return joined
    return ""


class Identifier(NamedTuple):
    system: str
    value: str
    type: str  # the v2-0203 identifier type code (MR, SS, ...) when sent, else ""


def identifiers(value: Any) -> list[Identifier]:
    """A resource's ``identifier`` list: those with a value, in the order sent."""
    found = []
    for item in as_list(value):
        if not isinstance(item, dict) or not (shown := text(item.get("value"))):
            continue
        kind = next((c.code for c in codes(item.get("type")) if c.code), "")
        found.append(Identifier(text(item.get("system")), shown, kind.upper()))
    return found


def pick_identifier(items: list[Identifier], system: str | None) -> str:
    """The medical record number: the identifier of ``system`` (the source's mapping), else the one typed MR."""
    if system:
        return next((i.value for i in items if i.system == system), "")
    return next((i.value for i in items if i.type == "MR"), "")


def search_key(value: str) -> str:
    """Text folded for search: case and YO/YE (Cyrillic) do not matter, runs of spaces are one."""
    return " ".join(value.casefold().replace("\u0451", "\u0435").split())
