"""Facts: concepts proved for one admission, each with the resource that proves it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from discharge_bridge.fhir.fields import (
    Code,
    as_list,
    codes,
    extensions,
    last_segment,
    period,
    text,
    typed_ref,
)
from discharge_bridge.risk.ages import age_at
from discharge_bridge.risk.codes import describe
from discharge_bridge.risk.evidence import (
    condition_counts,
    observation_counts,
    related_person_counts,
)
from discharge_bridge.risk.mapping import Concept, ExtensionRule, Mapping, ObservationRule
from discharge_bridge.risk.record import PatientRecord
from discharge_bridge.risk.stays import NO_DATE, group_stays

log = logging.getLogger(__name__)

# Age is carried as a fact of its own so rules can test `min_age`; it is no risk by itself.
AGE = "age"


@dataclass(frozen=True)
class Fact:
    """A concept proved for an admission. `evidence` is a chart reference a person can open."""

    concept: str
    evidence: str
    text: str  # English
    value: object | None = None
    translations: tuple[tuple[str, str], ...] = ()  # (language, words) of ``text`` in other languages

    def text_in(self, language: str) -> str:
        return dict(self.translations).get(language, self.text) if language != "en" else self.text


# The words of the facts the service proves itself, and around a mapping's concept text, per language:
# English is ``Fact.text``, the others ``Fact.translations``. The concepts' own words come from the
# mapping files (in each language they give).
SAID: dict[str, dict[str, str]] = {
    "age": {"en": "Aged {age} at admission (born {birth})", "ru": "Возраст при поступлении: {age}"},
    "code": {"en": "{concept} ({detail}) on {ref}", "ru": "{concept} ({detail}), {ref}"},
    "extension": {
        "en": "{concept} (extension {name} = {shown}) on {ref}",
        "ru": "{concept} (расширение {name} = {shown}), {ref}",
    },
    "fhirpath": {
        "en": "{concept} (FHIRPath on {resource}) on {ref}",
        "ru": "{concept} (FHIRPath по {resource}), {ref}",
    },
    "fhirpath_text": {"en": "{concept} on {ref}", "ru": "{concept}, {ref}"},
    "no_contacts": {
        "en": "No contact person on {ref} and no active RelatedPerson",
        "ru": "Нет контактного лица в {ref} и нет действующего RelatedPerson",
    },
    "no_guardian": {
        "en": "Child aged {age} with no parent or guardian among contacts or related persons",
        "ru": "Ребёнок (возраст {age}) без родителя или опекуна среди контактов и связанных лиц",
    },
    "screening": {
        "en": "{tool} {total} at the bedside ({band}) on {ref}",
        "ru": "{tool} {total} баллов при осмотре ({band_ru}), {ref}",
    },
    "readmission": {
        "en": "Readmission: inpatient stay {ref} ended {ended}, {gap} days before",
        "ru": "Повторная госпитализация: стационарное лечение {ref} завершилось {ended}, за {gap} дн. до этой",
    },
}


def said(
    kind: str,
    concept: str,
    evidence: str,
    *,
    words: dict[str, str] | None = None,
    value: object = None,
    **values: object,
) -> Fact:
    """A fact in each language of ``SAID[kind]``; ``words`` are the concept's words per language (``{concept}``)."""
    frames = SAID[kind]
    words = words or {}

    def put(language: str) -> str:
        return frames[language].format(concept=words.get(language, words.get("en", "")), **values)

    others = tuple((language, put(language)) for language in frames if language != "en")
    return Fact(concept, evidence, put("en"), value, others)


def _words(concept: Concept) -> dict[str, str]:
    return {"en": concept.text, **dict(concept.texts)}


def admission_date(record: PatientRecord) -> date | None:
    start, _ = period(record.encounter)
    return start.date() if start else None


def extract_facts(record: PatientRecord, mapping: Mapping) -> list[Fact]:
    """Every concept the record proves under the mapping, deduplicated, in a stable order."""
    view = _View(record)
    facts: list[Fact] = []
    facts += _age_facts(view, mapping)
    for concept in mapping.concepts.values():
        facts += _mapped_facts(view, concept)
    if "no_contacts" not in mapping.disabled:
        facts += _no_contacts(view)
    if "no_guardian" not in mapping.disabled:
        facts += _no_guardian(view, mapping)
    if "readmission" not in mapping.disabled:
        facts += _readmission(record, mapping)
    facts += _screening_facts(record)
    seen: set[tuple[str, str]] = set()
    unique = []
    for fact in facts:
        if (fact.concept, fact.evidence) not in seen:
            seen.add((fact.concept, fact.evidence))
            unique.append(fact)
    return unique


class _Holder(NamedTuple):
    """An Observation or one of its components, its codes read once for every concept."""

    data: dict[str, Any]
    code: list[Code]
    value_codes: list[Code]


class _View:
    """What every concept reads of one record, read once per record rather than once per concept:
    which resources count as evidence, their references and their codes. All pure, so reading
    eagerly gives the same facts as reading on demand."""

    def __init__(self, record: PatientRecord) -> None:
        self.record = record
        self.patient_ref = typed_ref(record.patient, "Patient")
        self.age = _age(record)
        self.conditions = [c for c in record.conditions if isinstance(c, dict) and condition_counts(c)]
        self.condition_codes = [(typed_ref(c, "Condition"), codes(c.get("code"))) for c in self.conditions]
        self.observations = [o for o in record.observations if isinstance(o, dict) and observation_counts(o)]
        self.observation_holders = [(typed_ref(o, "Observation"), _holders(o)) for o in self.observations]
        patient_id = text(record.patient.get("id"))
        self.related = [
            r for r in record.related_persons if isinstance(r, dict) and related_person_counts(r, patient_id)
        ]
        self.contacts = _contacts(record)


def _age(record: PatientRecord) -> int | None:
    on = admission_date(record)
    birth = text(record.patient.get("birthDate"))
    return age_at(birth, on) if on and birth else None


def _age_facts(view: _View, mapping: Mapping) -> list[Fact]:
    age = view.age
    if age is None:
        return []
    birth = text(view.record.patient.get("birthDate"))
    evidence = f"{view.patient_ref}.birthDate"
    facts = [said("age", AGE, evidence, value=age, age=age, birth=birth)]
    if age >= mapping.ages.elderly_from and "elderly" not in mapping.disabled:
        facts.append(said("age", "elderly", evidence, value=age, age=age, birth=birth))
    return facts


# --- mapped concepts ------------------------------------------------------------------------


def _mapped_facts(view: _View, concept: Concept) -> list[Fact]:
    record = view.record
    facts: list[Fact] = []
    if concept.conditions:
        for ref, found in view.condition_codes:
            hit = concept.conditions.first_match(found)
            if hit:
                facts.append(said("code", concept.name, ref, words=_words(concept), detail=describe(hit), ref=ref))
    if concept.observations:
        for ref, holders in view.observation_holders:
            facts += _observation_facts(concept, ref, holders)
    for rule in concept.patient_extensions:
        facts += _extension_facts(concept, rule, record.patient, view.patient_ref)
    if concept.encounter_extensions:
        encounter_ref = typed_ref(record.encounter, "Encounter")
        for rule in concept.encounter_extensions:
            facts += _extension_facts(concept, rule, record.encounter, encounter_ref)
    for fp in concept.fhirpath:
        for resource in _fhirpath_targets(view, fp.resource):
            env = {"patient": record.patient, "encounter": record.encounter, "resource": resource}
            try:
                result = fp.evaluate(resource, env)
            except Exception as exc:  # a vendor shape the expression did not expect: skip, never crash
                # The resource type, not its id, and no traceback: ids and error texts can name the patient.
                kind = resource.get("resourceType")
                log.debug("FHIRPath %r failed on a %s: %s", fp.expression, kind, type(exc).__name__)
                continue
            if any(item not in (False, None, "") for item in result):
                ref = typed_ref(resource, fp.resource)
                if fp.text:
                    words = {"en": fp.text, **dict(fp.texts)}
                    facts.append(said("fhirpath_text", concept.name, ref, words=words, ref=ref))
                else:
                    facts.append(
                        said("fhirpath", concept.name, ref, words=_words(concept), resource=fp.resource, ref=ref)
                    )
    return facts


def _fhirpath_targets(view: _View, resource: str) -> list[dict[str, Any]]:
    if resource == "Patient":
        return [view.record.patient]
    if resource == "Encounter":
        return [view.record.encounter]
    if resource == "Condition":
        return view.conditions
    if resource == "Observation":
        return view.observations
    return view.related


def _number(holder: dict[str, Any]) -> float | None:
    for key in ("valueInteger", "valueDecimal"):
        value = holder.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    quantity = holder.get("valueQuantity")
    if isinstance(quantity, dict):
        value = quantity.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _value_codes(holder: dict[str, Any]) -> list[Any]:
    return codes(holder.get("valueCodeableConcept")) + codes(holder.get("valueCoding")) + codes(holder.get("valueCode"))


def _holders(observation: dict[str, Any]) -> list[_Holder]:
    # A social-history panel may carry the answer in a component rather than the top level.
    parts = [observation] + [c for c in as_list(observation.get("component")) if isinstance(c, dict)]
    return [_Holder(part, codes(part.get("code")), _value_codes(part)) for part in parts]


def _observation_facts(concept: Concept, ref: str, holders: list[_Holder]) -> list[Fact]:
    for rule in concept.observations:
        for holder in holders:
            detail = _observation_matches(rule, holder)
            if detail is not None:
                number = _number(holder.data)
                return [said("code", concept.name, ref, words=_words(concept), value=number, detail=detail, ref=ref)]
    return []


def _observation_matches(rule: ObservationRule, holder: _Holder) -> str | None:
    parts: list[str] = []
    if rule.code:
        hit = rule.code.first_match(holder.code)
        if hit is None:
            return None
        parts.append(describe(hit))
    if rule.value_codes:
        value_hit = rule.value_codes.first_match(holder.value_codes)
        if value_hit is None:
            return None
        parts.append(f"= {describe(value_hit)}")
    if rule.value_min is not None or rule.value_max is not None:
        number = _number(holder.data)
        if number is None:
            return None
        if rule.value_min is not None and number < rule.value_min:
            return None
        if rule.value_max is not None and number > rule.value_max:
            return None
        parts.append(f"= {number:g}")
    if rule.value_boolean is not None:
        if holder.data.get("valueBoolean") is not rule.value_boolean:
            return None
        parts.append(f"= {str(rule.value_boolean).lower()}")
    return " ".join(parts)


def _extension_facts(concept: Concept, rule: ExtensionRule, resource: dict[str, Any], ref: str) -> list[Fact]:
    for ext in extensions(resource):
        if text(ext.get("url")).rstrip("/") != rule.url.rstrip("/"):
            continue
        shown = _extension_value_matches(rule, ext)
        if shown is not None:
            name = last_segment(rule.url)
            evidence = f"{ref}.extension[{name}]"
            return [said("extension", concept.name, evidence, words=_words(concept), name=name, shown=shown, ref=ref)]
    return []


def _extension_value_matches(rule: ExtensionRule, ext: dict[str, Any]) -> str | None:
    shown: list[str] = []
    if rule.value_boolean is not None:
        if ext.get("valueBoolean") is not rule.value_boolean:
            return None
        shown.append(str(rule.value_boolean).lower())
    if rule.value_codes:
        hit = rule.value_codes.first_match(_value_codes(ext))
        if hit is None:
            return None
        shown.append(describe(hit) if hit.system else hit.code)
    if rule.value_string is not None:
        if text(ext.get("valueString")).lower() != rule.value_string.strip().lower():
            return None
        shown.append(repr(rule.value_string))
    if rule.value_min is not None:
        number = _number(ext)
        if number is None or number < rule.value_min:
            return None
        shown.append(f"{number:g}")
    return ", ".join(shown)


# --- computed concepts ----------------------------------------------------------------------


def _contacts(record: PatientRecord) -> list[dict[str, Any]]:
    keys = ("name", "telecom", "relationship", "address", "organization")
    contacts = as_list(record.patient.get("contact"))
    return [c for c in contacts if isinstance(c, dict) and any(c.get(k) for k in keys)]


def _no_contacts(view: _View) -> list[Fact]:
    if view.contacts or view.related:
        return []
    ref = view.patient_ref
    return [said("no_contacts", "no_contacts", f"{ref}.contact", ref=ref)]


def _no_guardian(view: _View, mapping: Mapping) -> list[Fact]:
    age = view.age
    if age is None or age >= mapping.ages.child_under:
        return []
    for holder in view.contacts + view.related:
        if mapping.guardian_relationships.first_match(codes(holder.get("relationship"))):
            return []
    ref = view.patient_ref
    return [said("no_guardian", "no_guardian", f"{ref}.contact", value=age, age=age)]


def _readmission(record: PatientRecord, mapping: Mapping) -> list[Fact]:
    """An earlier inpatient *stay* (risk/stays.py: its legs and transfers count once) that ended
    within ``readmission_days`` before this admission."""
    admitted, _ = period(record.encounter)
    if admitted is None:
        return []
    this_id = text(record.encounter.get("id"))
    earlier = [e for e in record.other_encounters if isinstance(e, dict) and text(e.get("id")) != this_id]
    facts = []
    for stay in group_stays(earlier, mapping, now=admitted):
        ended = stay.ended_at
        if ended is None or ended > admitted or ended == NO_DATE:
            continue
        gap = (admitted.date() - ended.date()).days
        if gap <= mapping.encounters.readmission_days:
            ref = typed_ref(stay.current, "Encounter")
            facts.append(said("readmission", "readmission", ref, value=gap, ref=ref, ended=ended.date(), gap=gap))
    return facts


# A completed bedside screening's published band -> the concept the rule set scores (risk/screening.py).
SCREENING_CONCEPTS = {
    ("brass", "not_home"): "brass_high",  # BRASS >= 20: likely not going home
    ("brass", "needs_planning"): "brass_planning",  # BRASS 11-19: needs discharge planning
    ("isar", "at_risk"): "isar_at_risk",  # ISAR >= 2
}
_BANDS_RU = {
    "not_home": "вероятно, не вернётся домой",
    "needs_planning": "нужно планирование выписки",
    "at_risk": "в группе риска",
}


def _screening_facts(record: PatientRecord) -> list[Fact]:
    """The latest completed BRASS and ISAR of the admission, when their band is a risk."""
    latest: dict[str, dict[str, Any]] = {}
    for item in record.screenings:
        if isinstance(item, dict) and isinstance(item.get("total"), int):
            latest[str(item.get("tool"))] = item  # the service passes them oldest first
    facts = []
    for tool, item in sorted(latest.items()):
        concept = SCREENING_CONCEPTS.get((tool, str(item.get("band"))))
        if concept is None:
            continue
        ref, band = str(item.get("evidence")), str(item.get("band"))
        facts.append(
            said(
                "screening",
                concept,
                ref,
                value=item["total"],
                tool=tool.upper(),
                total=item["total"],
                band=band.replace("_", " "),
                band_ru=_BANDS_RU.get(band, band),
                ref=ref,
            )
        )
    return facts
