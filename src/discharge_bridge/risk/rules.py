"""Rule sets: points per concept and per combination, score thresholds, priorities.

Monotone by construction: points can't be negative, a rule only asks for facts to be present
(`all_of`, `any_of`, `min_age`, never "absent"), and age points must not fall as age rises, so
adding a fact never lowers the score or the priority. The loader refuses files that would break it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from discharge_bridge.risk.facts import AGE, Fact
from discharge_bridge.risk.mapping import (
    CONCEPT_NAME,
    DEFAULT_MAPPINGS_DIR,
    Texts,
    check_texts,
    key_path,
    read_texts,
    read_yaml,
)

Priority = Literal["high", "medium", "low"]
PRIORITY_ORDER: dict[str, int] = {"low": 1, "medium": 2, "high": 3}


class RuleSetError(ValueError):
    """A rules file that cannot be used: `file: key.path: what is wrong`."""

    def __init__(self, file: Path | str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = str(file), key, problem
        super().__init__(f"{file}: {key or '(top level)'}: {problem}")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Spec):
    high: int = Field(gt=0)
    medium: int = Field(gt=0)
    low: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if not self.high >= self.medium >= self.low:
            raise ValueError("thresholds must satisfy high >= medium >= low")
        return self


class _Texted(_Spec):
    """A rule's own words (see ``risk.mapping.read_texts``): a string, ``{en: ..., ru: ...}``, or ``text_ru``."""

    text: str | dict[str, str] | None = None
    text_ru: str | None = None

    @model_validator(mode="after")
    def _texts(self) -> _Texted:
        check_texts(self.text, self.text_ru)
        return self

    @property
    def texts(self) -> Texts:
        return read_texts(self.text, self.text_ru)


class ConceptRule(_Texted):
    points: int = Field(default=0, ge=0)
    age_points: dict[int, int] = {}
    min_priority: Priority | None = None

    @field_validator("age_points")
    @classmethod
    def _rising(cls, value: dict[int, int]) -> dict[int, int]:
        last = -1
        for age in sorted(value):
            if age < 0 or value[age] < 0:
                raise ValueError("ages and points must be >= 0")
            if value[age] < last:
                raise ValueError(f"points must not fall as age rises (age {age})")
            last = value[age]
        return value


class CombinationRule(_Texted):
    id: str
    all_of: list[str] = []
    any_of: list[str] = []
    min_age: int | None = Field(default=None, ge=0)
    points: int = Field(default=0, ge=0)
    min_priority: Priority | None = None

    @model_validator(mode="after")
    def _asks_something(self) -> CombinationRule:
        if not self.all_of and not self.any_of and self.min_age is None:
            raise ValueError("a combination needs all_of, any_of or min_age")
        if self.points == 0 and self.min_priority is None:
            raise ValueError("a combination needs points or min_priority, or it does nothing")
        for name in self.all_of + self.any_of:
            if not CONCEPT_NAME.match(name):
                raise ValueError(f"concept name {name!r} must be lower_snake_case")
        return self


class RuleSetSpec(_Spec):
    version: str
    description: str = ""
    thresholds: Thresholds
    concepts: dict[str, ConceptRule] = {}
    combinations: list[CombinationRule] = []

    @field_validator("version", mode="before")
    @classmethod
    def _text_version(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSetSpec:
        seen: set[str] = set(self.concepts)
        for index, combo in enumerate(self.combinations):
            if combo.id in seen:
                raise ValueError(f"combinations[{index}].id {combo.id!r} is used twice (ids include concept names)")
            seen.add(combo.id)
        return self


@dataclass(frozen=True)
class RuleSet:
    version: str
    file: str
    thresholds: Thresholds
    concepts: dict[str, ConceptRule]
    combinations: tuple[CombinationRule, ...]


def load_rules(path_or_name: str = "rules", *, search_dir: Path = DEFAULT_MAPPINGS_DIR) -> RuleSet:
    """Parse `<search_dir>/<name>.yaml` (or a path); raise RuleSetError naming file, key and problem.

    Parsed at each call: the service asks ``risk.loading.rule_set``, which keeps the parsed file
    until it changes.
    """
    path = Path(path_or_name)
    if path.suffix not in {".yaml", ".yml"} and "/" not in path_or_name:
        path = search_dir / f"{path_or_name}.yaml"
    if not path.is_file():
        raise RuleSetError(path, "", "rules file not found")
    error: Callable[[Path, str, str], Exception] = RuleSetError
    raw = read_yaml(path, error)
    try:
        spec = RuleSetSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        problem = first["msg"].removeprefix("Value error, ")
        raise RuleSetError(path, key_path(tuple(first["loc"])), problem) from exc
    return RuleSet(spec.version, str(path), spec.thresholds, dict(spec.concepts), tuple(spec.combinations))


@dataclass(frozen=True)
class Reason:
    concept: str
    rule: str  # the stable id of the rule: a concept's name, or a combination's id
    points: int
    evidence: list[str]
    text: str  # English
    texts: dict[str, str] = field(default_factory=dict)  # language -> words, English among them


def reason_text(reason: Mapping[str, object], language: str) -> str:
    """A stored reason's words in ``language``: its own translation, else its English ``text``
    (reasons stored before texts had languages have only that)."""
    texts = reason.get("texts")
    if isinstance(texts, dict):
        found = texts.get(language)
        if isinstance(found, str) and found:
            return found
    return str(reason.get("text") or "")


def _fact_texts(found: list[Fact]) -> dict[str, str]:
    """The facts' words joined, in English and in every language some fact speaks."""
    languages = ["en", *sorted({language for f in found for language, _ in f.translations})]
    return {language: "; ".join(dict.fromkeys(f.text_in(language) for f in found)) for language in languages}


@dataclass(frozen=True)
class Assessment:
    score: int
    priority: Priority | None
    reasons: list[Reason]
    rules_version: str

    @property
    def flagged(self) -> bool:
        return self.priority is not None


def _age(by_concept: dict[str, list[Fact]]) -> int | None:
    facts = by_concept.get(AGE, []) + by_concept.get("elderly", [])
    ages = [f.value for f in facts if isinstance(f.value, int)]
    return max(ages) if ages else None


def _band_points(table: dict[int, int], age: int | None) -> int:
    if age is None:
        return 0
    reached = [age_from for age_from in table if age >= age_from]
    return table[max(reached)] if reached else 0


def _evidence(facts: list[Fact]) -> list[str]:
    return list(dict.fromkeys(f.evidence for f in facts))


def assess(facts: list[Fact], rules: RuleSet) -> Assessment:
    """Score the facts: each matching rule adds its points and may lift the priority.

    Priority is the highest of the score's threshold and the `min_priority` of every rule that
    matched; None (not flagged) when the score is under `low` and no rule forces a priority.
    Reasons follow the rules file's order: concept rules, then combinations.
    """
    by_concept: dict[str, list[Fact]] = {}
    for fact in facts:
        by_concept.setdefault(fact.concept, []).append(fact)
    age = _age(by_concept)
    reasons: list[Reason] = []
    forced = 0
    for name, rule in rules.concepts.items():
        found = by_concept.get(name)
        if not found:
            continue
        points = rule.points + _band_points(rule.age_points, age)
        texts = rule.texts or _fact_texts(found)
        reasons.append(Reason(name, name, points, _evidence(found), texts["en"], texts))
        if rule.min_priority:
            forced = max(forced, PRIORITY_ORDER[rule.min_priority])
    for combo in rules.combinations:
        if any(c not in by_concept for c in combo.all_of):
            continue
        hits = [c for c in combo.any_of if c in by_concept]
        if combo.any_of and not hits:
            continue
        if combo.min_age is not None and (age is None or age < combo.min_age):
            continue
        involved = combo.all_of + hits
        used = [f for c in involved for f in by_concept[c]]
        if combo.min_age is not None:
            used = by_concept.get(AGE, by_concept.get("elderly", []))[:1] + used
        label = "+".join((["elderly"] if combo.min_age is not None else []) + involved)
        texts = combo.texts or {"en": " and ".join(involved + ([f"aged {combo.min_age}+"] if combo.min_age else []))}
        reasons.append(Reason(label, combo.id, combo.points, _evidence(used), texts["en"], texts))
        if combo.min_priority:
            forced = max(forced, PRIORITY_ORDER[combo.min_priority])
    score = sum(r.points for r in reasons)
    t = rules.thresholds
    level = 3 if score >= t.high else 2 if score >= t.medium else 1 if score >= t.low else 0
    level = max(level, forced)
    priority: Priority | None = {3: "high", 2: "medium", 1: "low"}.get(level)  # type: ignore[assignment]
    return Assessment(score, priority, reasons, rules.version)
