from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discharge_bridge.risk import Fact, RuleSetError, assess
from discharge_bridge.risk.rules import PRIORITY_ORDER, load_rules

RULES = load_rules()
RISKS = [
    "lives_alone",
    "no_contacts",
    "dementia",
    "homeless",
    "disability",
    "adl_dependency",
    "large_family",
    "no_guardian",
    "readmission",
    "social_isolation",
    "no_caregiver",
]


def fact(concept: str, evidence: str | None = None) -> Fact:
    return Fact(concept, evidence or f"Condition/{concept}", f"{concept} text")


def with_age(age: int | None, *concepts: str) -> list[Fact]:
    facts = [fact(c) for c in concepts]
    if age is not None:
        facts.append(Fact("age", "Patient/9.birthDate", f"Aged {age}", age))
        if age >= 65:
            facts.append(Fact("elderly", "Patient/9.birthDate", f"Aged {age}", age))
    return facts


def level(priority: str | None) -> int:
    return PRIORITY_ORDER.get(priority or "", 0)


def test_version_is_text() -> None:
    assert RULES.version == "2025.2"


@pytest.mark.parametrize(
    ("age", "concepts", "priority"),
    [
        (75, ["lives_alone"], "high"),
        (80, ["no_contacts"], "high"),
        (50, ["dementia", "no_contacts"], "high"),
        (30, ["homeless"], "high"),
        (8, ["no_guardian"], "high"),
        (50, ["dementia", "lives_alone"], "high"),
        (40, ["lives_alone"], "medium"),
        (40, ["dementia"], "medium"),
        (40, ["disability"], "medium"),
        (40, ["adl_dependency"], "medium"),
        (40, ["large_family"], "medium"),
        (40, ["readmission"], "medium"),
        (65, ["no_contacts"], "medium"),
        (80, [], "medium"),
        (75, [], "low"),
        (70, [], None),
        (40, [], None),
        (40, ["no_contacts"], None),
        (64, ["no_contacts"], None),
        (None, [], None),
    ],
)
def test_default_rule_set(age: int | None, concepts: list[str], priority: str | None) -> None:
    result = assess(with_age(age, *concepts), RULES)
    assert result.priority == priority
    assert result.flagged is (priority is not None)
    assert result.rules_version == RULES.version
    assert result.score == sum(r.points for r in result.reasons)


def test_reasons_name_rule_points_and_evidence() -> None:
    facts = [*with_age(78, "lives_alone"), fact("lives_alone", "Observation/2")]
    result = assess(facts, RULES)
    by_rule = {r.rule: r for r in result.reasons}
    assert by_rule["lives_alone"].evidence == ["Condition/lives_alone", "Observation/2"]
    assert by_rule["lives_alone"].points == 4
    assert by_rule["elderly"].points == 2
    combo = by_rule["elderly_lives_alone"]
    assert combo.concept == "elderly+lives_alone"
    assert "Patient/9.birthDate" in combo.evidence and "Observation/2" in combo.evidence
    assert combo.text == "Aged 75 or over and lives alone"


def test_unscored_concepts_add_nothing() -> None:
    result = assess([fact("something_local")], RULES)
    assert result.score == 0 and result.priority is None and result.reasons == []


fact_sets = st.lists(st.sampled_from(RISKS), unique=True)
ages = st.one_of(st.none(), st.integers(min_value=0, max_value=110))


@settings(max_examples=300)
@given(fact_sets, fact_sets, ages)
def test_adding_a_fact_never_lowers_score_or_priority(base: list[str], extra: list[str], age: int | None) -> None:
    before = assess(with_age(age, *base), RULES)
    after = assess(with_age(age, *base, *extra), RULES)
    assert after.score >= before.score
    assert level(after.priority) >= level(before.priority)


@settings(max_examples=300)
@given(fact_sets, st.integers(min_value=0, max_value=110), st.integers(min_value=0, max_value=30))
def test_being_older_never_lowers_score_or_priority(concepts: list[str], age: int, more: int) -> None:
    before = assess(with_age(age, *concepts), RULES)
    after = assess(with_age(age + more, *concepts), RULES)
    assert after.score >= before.score
    assert level(after.priority) >= level(before.priority)


@given(fact_sets, ages)
def test_learning_the_age_never_lowers(concepts: list[str], age: int | None) -> None:
    before = assess(with_age(None, *concepts), RULES)
    after = assess(with_age(age, *concepts), RULES)
    assert after.score >= before.score
    assert level(after.priority) >= level(before.priority)


# --- broken files -----------------------------------------------------------------------------

GOOD = """
version: "1"
thresholds: {high: 8, medium: 4, low: 2}
concepts:
  lives_alone: {points: 4}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_loads_by_name_from_a_directory(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    assert load_rules("rules", search_dir=tmp_path).version == "1"


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("thresholds: {high: 8, medium: 4, low: 2}", "version", "Field required"),
        (GOOD.replace("points: 4", "points: -1"), "concepts.lives_alone.points", "greater than or equal to 0"),
        (GOOD.replace("points: 4", "pionts: 4"), "concepts.lives_alone.pionts", "Extra inputs"),
        (GOOD.replace("high: 8", "high: 3"), "thresholds", "high >= medium >= low"),
        (
            GOOD + "  elderly: {age_points: {65: 3, 80: 1}}\n",
            "concepts.elderly.age_points",
            "must not fall as age rises",
        ),
        (GOOD + "combinations:\n  - id: x\n    all_of: [lives_alone]\n", "combinations[0]", "points or min_priority"),
        (GOOD + "combinations:\n  - id: x\n    points: 1\n", "combinations[0]", "all_of, any_of or min_age"),
        (
            GOOD + "combinations:\n  - id: lives_alone\n    all_of: [dementia]\n    points: 1\n",
            "(top level)",
            "used twice",
        ),
        (
            GOOD + "combinations:\n  - id: x\n    all_of: [dementia]\n    min_priority: urgent\n",
            "combinations[0].min_priority",
            "'high', 'medium' or 'low'",
        ),
        ("version: [1\n", "(top level)", "not valid YAML"),
        ("- a\n- b\n", "(top level)", "must be a mapping"),
    ],
)
def test_broken_rules_name_file_key_and_problem(tmp_path: Path, text: str, key: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RuleSetError) as err:
        load_rules(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert says in message


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RuleSetError, match="not found"):
        load_rules("nope", search_dir=tmp_path)
