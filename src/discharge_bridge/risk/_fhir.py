"""Tolerant readers for FHIR R4 JSON as EHRs really send it.

Nothing here raises on shape: a bare Coding where a CodeableConcept is due, a list where one
item is due, empty strings, `null` inside lists and missing fields all read as "nothing here".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, NamedTuple


class Code(NamedTuple):
    """One Coding. A NamedTuple, not a dataclass: millions are made per scoring pass and a
    tuple is several times cheaper to build than a frozen dataclass."""

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


def resource_ref(resource: dict[str, Any]) -> str:
    """`Type/id` for a resource, `Type/?` when it has no id."""
    rtype = text(resource.get("resourceType")) or "Resource"
    rid = text(resource.get("id")) or "?"
    return f"{rtype}/{rid}"


def typed_ref(resource: dict[str, Any], rtype: str) -> str:
    """`resource_ref({"resourceType": rtype, **resource})` without copying the resource:
    the resource's own resourceType, when it has the key, wins."""
    declared = resource.get("resourceType", rtype)
    rid = resource.get("id")
    return f"{text(declared) or 'Resource'}/{(rid.strip() if isinstance(rid, str) else '') or '?'}"


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
    return _parse_datetime(raw) if raw else None


# The same admission's period.start is read by facts, readmission and three LACE components;
# datetimes are immutable, so a small cache of recent strings is safe and saves the re-parsing.
@lru_cache(maxsize=4096)
def _parse_datetime(raw: str) -> datetime | None:
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
