"""BRASS and ISAR: the questionnaires in ``mappings/questionnaires/`` and their published scoring. Pure.

- BRASS (Blaylock & Cason, J Gerontol Nurs 1992;18(7):5-10), ten areas scored 0-40: age (<=55 0,
  56-64 1, 65-79 2, >=80 3); living situation and support (only with spouse 0, with family 1,
  alone with family support 2, alone with friends' support 3, alone with no support 4, nursing
  home or residential care 5); functional status (1 per dependency among eating, bathing,
  toileting, transferring, bowel and bladder incontinence, meal preparation, own medication,
  finances, shopping, transport: 0-11); cognition (oriented 0 .. disoriented to all spheres all
  the time 4, comatose 5); behaviour (1 each: wandering, agitated, confused, other); mobility
  (ambulatory 0, mechanical help 1, human help 2, not ambulatory 3); sensory deficits (0-2);
  admissions or ED visits in the last 3 months (none 0, one 1, two 2, more 3); active medical
  problems (<3 0, 3-5 1, >5 2); drugs (<3 0, 3-5 1, >5 2). Bands: 0-10 low risk, 11-19 needs
  discharge planning, >=20 likely not going home.
- ISAR (McCusker et al., J Am Geriatr Soc 1999;47(10):1229-37), six yes/no items for people
  aged 65 or over, 1 point each (item 4, "do you see well?", scores on "no"): 0-6, >= 2 at risk.

Each answerOption's points travel as the ``ordinalValue`` extension of its Coding (R4), so the
Questionnaire file alone says how it scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discharge_bridge.risk import loading

ORDINAL_URL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
TOOLS = ("brass", "isar")


@dataclass(frozen=True)
class Definition:
    """One questionnaire: its resource, and per answerable item the points of each answer code."""

    tool: str
    resource: dict[str, Any]
    points: dict[str, dict[str, int]]  # linkId -> {answer code: points}
    texts: dict[str, str]  # linkId -> question text (groups included)
    required: tuple[str, ...]  # answerable linkIds, in order

    @property
    def url(self) -> str:
        return str(self.resource["url"])

    @property
    def version(self) -> str:
        return str(self.resource["version"])

    @property
    def maximum(self) -> int:
        return sum(max(options.values()) for options in self.points.values())


def _ordinal(option: dict[str, Any]) -> int:
    coding = option.get("valueCoding") or {}
    for ext in coding.get("extension", []) + option.get("extension", []):
        if ext.get("url") == ORDINAL_URL:
            return int(ext["valueDecimal"])
    raise ValueError(f"answer {coding.get('code')!r} has no {ORDINAL_URL} extension")


def _walk(items: list[dict[str, Any]], points: dict[str, dict[str, int]], texts: dict[str, str]) -> None:
    for item in items:
        texts[item["linkId"]] = item.get("text", "")
        if item.get("type") == "group":
            _walk(item.get("item", []), points, texts)
        else:
            points[item["linkId"]] = {o["valueCoding"]["code"]: _ordinal(o) for o in item.get("answerOption", [])}


def _parse(path: Path) -> Definition:
    resource = json.loads(path.read_text(encoding="utf-8"))
    points: dict[str, dict[str, int]] = {}
    texts: dict[str, str] = {}
    _walk(resource.get("item", []), points, texts)
    return Definition(tool=path.stem, resource=resource, points=points, texts=texts, required=tuple(points))


def definition(tool: str, mappings_dir: Path) -> Definition:
    """The tool's Questionnaire, parsed once per version of its file. Raises ValueError for an unknown tool."""
    if tool not in TOOLS:
        raise ValueError(f"unknown screening tool {tool!r}")
    return loading.cached_file(mappings_dir / "questionnaires" / f"{tool}.json", _parse, "questionnaire")


def unanswered(defn: Definition, answers: dict[str, Any]) -> list[str]:
    """Required items without an answer, in the questionnaire's order."""
    return [link for link in defn.required if not _code(answers.get(link))]


def _code(answer: Any) -> str | None:
    value = answer.get("value") if isinstance(answer, dict) else answer
    return value if isinstance(value, str) and value else None


def total(defn: Definition, answers: dict[str, Any]) -> int:
    """The sum of the answered items' points (a floor while some are unanswered)."""
    out = 0
    for link, options in defn.points.items():
        code = _code(answers.get(link))
        if code is not None and code in options:
            out += options[code]
    return out


def band(tool: str, score: int) -> str:
    """The published band: BRASS low / needs_planning / not_home; ISAR not_at_risk / at_risk."""
    if tool == "brass":
        if score <= 10:
            return "low"
        return "needs_planning" if score <= 19 else "not_home"
    if tool == "isar":
        return "at_risk" if score >= 2 else "not_at_risk"
    raise ValueError(f"unknown screening tool {tool!r}")
