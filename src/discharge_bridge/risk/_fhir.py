"""Tolerant readers for FHIR R4 JSON as EHRs really send it.

Nothing here raises on shape: a bare Coding where a CodeableConcept is due, a list where one
item is due, empty strings, `null` inside lists and missing fields all read as "nothing here".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Code:
    system: str
    code: str
    display: str = ""


def as_list(value: Any) -> list[Any]:
    """One item or a list, `None` items dropped."""
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def text(value: Any) -> str:
    """A stripped string, or "" for anything that is not a non-empty string."""
    return value.strip() if isinstance(value, str) else ""


def codes(value: Any) -> list[Code]:
    """Codings of a CodeableConcept, a bare Coding, a list of either, or a plain code string."""
    out: list[Code] = []
    for item in as_list(value):
        if isinstance(item, str):
            if item.strip():
                out.append(Code("", item.strip()))
            continue
        if not isinstance(item, dict):
            continue
        if "coding" in item:
            out.extend(codes(item["coding"]))
        elif "code" in item:
            code = text(item.get("code"))
            if code:
                out.append(Code(text(item.get("system")), code, text(item.get("display"))))
    return out


def code_values(value: Any) -> set[str]:
    """Bare codes of a status-like element, system ignored, lower-cased."""
    return {c.code.lower() for c in codes(value)}


def resource_ref(resource: dict[str, Any]) -> str:
    """`Type/id` for a resource, `Type/?` when it has no id."""
    rtype = text(resource.get("resourceType")) or "Resource"
    rid = text(resource.get("id")) or "?"
    return f"{rtype}/{rid}"


def reference_id(value: Any, rtype: str | None = None) -> str:
    """The id in a Reference (`Encounter/5`, an absolute URL or `urn:uuid:...`), "" when none."""
    if not isinstance(value, dict):
        return ""
    ref = text(value.get("reference"))
    if not ref:
        return ""
    if ref.startswith("urn:uuid:"):
        return ref
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and (rtype is None or parts[-2] == rtype):
        return parts[-1]
    return "" if rtype is not None else parts[-1]


def parse_datetime(value: Any) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime (UTC when the EHR sent no zone).

    A date-only value (`2024-03-01`) reads as its midnight; partial dates (`2024`, `2024-03`)
    read as their first day. Unreadable values are None.
    """
    raw = text(value)
    if not raw:
        return None
    if len(raw) == 4 and raw.isdigit():
        raw = f"{raw}-01-01"
    elif len(raw) == 7 and raw[4] == "-":
        raw = f"{raw}-01"
    try:
        if len(raw) == 10:
            parsed = datetime.combine(date.fromisoformat(raw), datetime.min.time())
        else:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def period(resource: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    p = resource.get("period")
    if not isinstance(p, dict):
        return None, None
    return parse_datetime(p.get("start")), parse_datetime(p.get("end"))


def extensions(resource: Any) -> Iterator[dict[str, Any]]:
    if isinstance(resource, dict):
        for ext in as_list(resource.get("extension")):
            if isinstance(ext, dict) and text(ext.get("url")):
                yield ext


def encounter_class_codes(encounter: dict[str, Any]) -> set[str]:
    """Class codes of an Encounter: one Coding in R4, CodeableConcepts in R5; both accepted."""
    return {c.code for c in codes(encounter.get("class"))}


def encounter_status(encounter: dict[str, Any]) -> str:
    return text(encounter.get("status")).lower()


def last_segment(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1] or url
