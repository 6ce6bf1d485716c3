"""Reasons in the reader's language: rule and concept texts per language in mappings/, the facts'
own words in Russian, the old single-string form still read, and stored reasons rendered by language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from discharge_bridge.risk import assess, extract_facts, record_from_bundle
from discharge_bridge.risk.mapping import MappingError, load_mapping
from discharge_bridge.risk.rules import RuleSetError, load_rules, reason_text
from tests.risk.factories import ICD, SCT, condition, encounter, patient, record

SCENARIOS = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "scenarios"
NAMES = sorted(p.name for p in SCENARIOS.iterdir() if (p / "bundle.json").is_file())
CYRILLIC = set("абвгдеёжзийклмнопрстуфхцчшщъыьэюя")


def _write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


RULES = """
version: "t1"
thresholds: {high: 8, medium: 4, low: 2}
concepts:
  lives_alone: {points: 4}
  dementia: {points: 4}
  elderly: {age_points: {65: 1}}
combinations:
  - id: dementia_lives_alone
    all_of: [dementia, lives_alone]
    points: 2
    text:
      en: Dementia and lives alone
      ru: Деменция, одиноко проживает
  - id: old_style
    all_of: [lives_alone]
    points: 1
    text: Lives alone, plain English only
"""

MAPPING = """
concepts:
  lives_alone:
    text: {en: Lives alone, ru: Одиноко проживает}
    conditions: [{system: icd10, codes: [Z60.2]}]
  dementia:
    text: Dementia
    text_ru: Деменция
    conditions: [{system: snomed, codes: ["52448006"]}]
"""


def _assessed(tmp_path: Path) -> dict[str, dict[str, str]]:
    _write(tmp_path, "rules", RULES)
    _write(tmp_path, "site", MAPPING)
    mapping = load_mapping("site", search_dir=tmp_path)
    found = record(
        patient=patient(birth="1940-01-01"),
        encounter=encounter(),
        conditions=[condition(ICD, "Z60.2", cid="c1"), condition(SCT, "52448006", cid="c2")],
    )
    result = assess(extract_facts(found, mapping), load_rules("rules", search_dir=tmp_path))
    return {r.rule: r.texts for r in result.reasons}


def test_rules_and_concepts_give_their_words_per_language(tmp_path: Path) -> None:
    texts = _assessed(tmp_path)
    assert texts["dementia_lives_alone"] == {"en": "Dementia and lives alone", "ru": "Деменция, одиноко проживает"}
    assert texts["old_style"] == {"en": "Lives alone, plain English only"}  # the old form is still read
    # A concept rule without its own text speaks through its facts: the mapping's words and the code.
    assert texts["lives_alone"] == {
        "en": "Lives alone (ICD-10 Z60.2) on Condition/c1",
        "ru": "Одиноко проживает (ICD-10 Z60.2), Condition/c1",
    }
    assert texts["dementia"]["ru"] == "Деменция (SNOMED 52448006), Condition/c2"
    assert texts["elderly"]["en"].startswith("Aged 84 at admission (born 1940-01-01)")
    assert texts["elderly"]["ru"] == "Возраст при поступлении: 84"  # and no birth date in it


def test_a_stored_reason_is_read_in_the_readers_language_and_falls_back_to_english() -> None:
    reason = {"rule": "x", "text": "Lives alone", "texts": {"en": "Lives alone", "ru": "Одиноко проживает"}}
    assert reason_text(reason, "ru") == "Одиноко проживает"
    assert reason_text(reason, "en") == "Lives alone"
    assert reason_text(reason, "de") == "Lives alone"
    assert reason_text({"rule": "x", "text": "Stored before texts had languages"}, "ru") == (
        "Stored before texts had languages"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("text: {ru: Только по-русски}", "text needs its English words (en)"),
        ("text: {en: Lives alone, russian: Одиноко}", "'russian' is not a two-letter language code"),
        ("text: {en: Lives alone, ru: '  '}", "text.ru is empty"),
        ("text: {en: Lives alone, ru: Одиноко}\n    text_ru: Одиноко", "give the Russian text once"),
    ],
)
def test_a_broken_text_is_refused_naming_the_file_and_the_concept(tmp_path: Path, text: str, problem: str) -> None:
    _write(
        tmp_path,
        "site",
        f"concepts:\n  lives_alone:\n    {text}\n    conditions: [{{system: icd10, codes: [Z60.2]}}]\n",
    )
    with pytest.raises(MappingError) as caught:
        load_mapping("site", search_dir=tmp_path)
    assert caught.value.file.endswith("site.yaml") and caught.value.key == "concepts.lives_alone"
    assert problem in caught.value.problem


def test_a_broken_rule_text_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "rules", RULES.replace("ru: Деменция, одиноко проживает", "russian: Деменция"))
    with pytest.raises(RuleSetError) as caught:
        load_rules("rules", search_dir=tmp_path)
    assert caught.value.key == "combinations[0]"
    assert "'russian' is not a two-letter language code" in caught.value.problem
    _write(tmp_path, "rules", RULES.replace("en: Dementia and lives alone", "fr: Démence"))
    with pytest.raises(RuleSetError, match="text needs its English words"):
        load_rules("rules", search_dir=tmp_path)


def test_a_site_that_rewords_a_concept_drops_the_base_translation_and_may_translate_alone(tmp_path: Path) -> None:
    _write(tmp_path, "base", MAPPING)
    _write(tmp_path, "reworded", "extends: base\nconcepts:\n  lives_alone:\n    text: Lives on their own\n")
    _write(tmp_path, "translated", "extends: base\nconcepts:\n  lives_alone:\n    text_ru: Живёт один\n")
    reworded = load_mapping("reworded", search_dir=tmp_path).concepts["lives_alone"]
    assert reworded.text == "Lives on their own" and reworded.text_in("ru") == "Lives on their own"
    translated = load_mapping("translated", search_dir=tmp_path).concepts["lives_alone"]
    assert translated.text == "Lives alone" and translated.text_in("ru") == "Живёт один"


@pytest.mark.parametrize("name", NAMES)
def test_every_reason_of_the_shipped_rules_and_mappings_has_russian_words(name: str) -> None:
    folder = SCENARIOS / name
    bundle = json.loads((folder / "bundle.json").read_text())
    expected_mapping = "default"
    expected = (folder / "expected.yaml").read_text()
    for line in expected.splitlines():
        if line.startswith("mapping:"):
            expected_mapping = line.split(":", 1)[1].strip()
    encounter_id = None
    for line in expected.splitlines():
        if line.startswith("encounter:"):
            encounter_id = line.split(":", 1)[1].strip().strip("'\"")
    facts = extract_facts(record_from_bundle(bundle, encounter_id), load_mapping(expected_mapping))
    for reason in assess(facts, load_rules()).reasons:
        russian = reason.texts.get("ru", "")
        assert russian and CYRILLIC & set(russian.lower()), (reason.rule, reason.texts)
        assert reason.texts["en"] == reason.text
