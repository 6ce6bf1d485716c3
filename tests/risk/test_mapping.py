from __future__ import annotations

from pathlib import Path

import pytest

from discharge_bridge.risk import MappingError
from discharge_bridge.risk.mapping import DEFAULT_MAPPINGS_DIR, load_mapping


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_default_and_example_mappings_load() -> None:
    default = load_mapping("default")
    assert default.name == "default"
    assert {"lives_alone", "dementia", "homeless", "disability", "adl_dependency", "large_family"} <= set(
        default.concepts
    )
    assert default.encounters.inpatient_classes == ["IMP", "ACUTE", "NONAC"]
    city = load_mapping("city-hospital")
    assert city.files == (str(DEFAULT_MAPPINGS_DIR / "default.yaml"), str(DEFAULT_MAPPINGS_DIR / "city-hospital.yaml"))
    assert len(city.concepts["lives_alone"].patient_extensions) == 1
    # extends appends: the default's codes are still there
    assert len(city.concepts["lives_alone"].conditions) == len(default.concepts["lives_alone"].conditions)
    # replace: true drops the default's definition
    assert len(city.concepts["large_family"].observations) == 1
    assert city.concepts["large_family"].observations[0].value_min == 5


def test_load_by_path_and_each_call_reads_afresh(tmp_path: Path) -> None:
    path = write(tmp_path, "site", "encounters: {inpatient_classes: [IMP]}\n")
    assert load_mapping(str(path)).encounters.inpatient_classes == ["IMP"]
    path.write_text("encounters: {inpatient_classes: [ACUTE]}\n")
    assert load_mapping("site", search_dir=tmp_path).encounters.inpatient_classes == ["ACUTE"]


def test_site_overrides_sections_key_by_key(tmp_path: Path) -> None:
    write(tmp_path, "base", "encounters: {inpatient_classes: [IMP], readmission_days: 30}\nages: {elderly_from: 65}\n")
    write(tmp_path, "site", "extends: base\nencounters: {readmission_days: 28}\n")
    mapping = load_mapping("site", search_dir=tmp_path)
    assert mapping.encounters.inpatient_classes == ["IMP"]
    assert mapping.encounters.readmission_days == 28
    assert mapping.ages.elderly_from == 65


def test_disable_a_concept(tmp_path: Path) -> None:
    write(
        tmp_path,
        "site",
        f"extends: {DEFAULT_MAPPINGS_DIR / 'default.yaml'}\n"
        "concepts:\n  large_family: {enabled: false}\n  no_contacts: {enabled: false}\n",
    )
    mapping = load_mapping("site", search_dir=tmp_path)
    assert "large_family" not in mapping.concepts
    assert {"large_family", "no_contacts"} <= mapping.disabled


def test_site_aliases_usable_in_parent_and_child(tmp_path: Path) -> None:
    write(
        tmp_path,
        "site",
        "systems: {local: 'urn:local'}\nconcepts:\n  homeless:\n    conditions: [{system: local, codes: [H1]}]\n",
    )
    assert load_mapping("site", search_dir=tmp_path).concepts["homeless"].conditions[0].systems == {"urn:local"}


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        (
            "concepts:\n  lives_alone:\n    patient_extensions:\n      - url: http://x/y\n",
            "concepts.lives_alone.patient_extensions[0]",
            "say which value proves it",
        ),
        (
            "concepts:\n  lives_alone:\n    patient_extensions:\n"
            "      - url: http://x/y\n        value_boolean: maybe\n",
            "concepts.lives_alone.patient_extensions[0].value_boolean",
            "valid boolean",
        ),
        (
            "concepts:\n  dementia:\n    conditions:\n      - system: icd11\n        codes: [6D80]\n",
            "concepts.dementia.conditions[0].system",
            "unknown system alias 'icd11'",
        ),
        (
            "concepts:\n  dementia:\n    conditions:\n      - system: icd10\n",
            "concepts.dementia.conditions[0]",
            "give `codes` or `prefixes`",
        ),
        ("concepts:\n  dementia:\n    conditoins: []\n", "concepts.dementia.conditoins", "Extra inputs"),
        ("concepts:\n  Lives-Alone: {}\n", "concepts", "lower_snake_case"),
        (
            'concepts:\n  x:\n    fhirpath:\n      - resource: Patient\n        expression: "extension.where(url="\n',
            "concepts.x.fhirpath[0].expression",
            "FHIRPath does not parse",
        ),
        (
            "concepts:\n  x:\n    fhirpath:\n      - resource: Location\n        expression: id\n",
            "concepts.x.fhirpath[0].resource",
            "Input should be",
        ),
        ("concepts:\n  x:\n    observations:\n      - {}\n", "concepts.x.observations[0]", "give `code`"),
        ("encounters: {readmission_days: soon}\n", "encounters.readmission_days", "valid integer"),
        ("concepts: [1, 2]\n", "concepts", "valid dictionary"),
        ("concepts: {x: {text: [\n", "(top level)", "not valid YAML"),
    ],
)
def test_broken_mapping_names_file_key_and_problem(tmp_path: Path, text: str, key: str, says: str) -> None:
    path = write(tmp_path, "site", text)
    with pytest.raises(MappingError) as err:
        load_mapping("site", search_dir=tmp_path)
    assert str(err.value).startswith(f"{path}: {key}: "), str(err.value)
    assert says in str(err.value)
    assert err.value.file == str(path) and err.value.key == ("" if key == "(top level)" else key)


def test_error_in_the_parent_names_the_parent(tmp_path: Path) -> None:
    parent = write(tmp_path, "base", "ages: {elderly_from: old}\n")
    write(tmp_path, "site", "extends: base\n")
    with pytest.raises(MappingError) as err:
        load_mapping("site", search_dir=tmp_path)
    assert err.value.file == str(parent) and err.value.key == "ages.elderly_from"


def test_missing_parent_and_loops(tmp_path: Path) -> None:
    write(tmp_path, "site", "extends: nowhere\n")
    with pytest.raises(MappingError, match="'nowhere' not found"):
        load_mapping("site", search_dir=tmp_path)
    write(tmp_path, "a", "extends: b\n")
    write(tmp_path, "b", "extends: a\n")
    with pytest.raises(MappingError, match="extends itself"):
        load_mapping("a", search_dir=tmp_path)
    with pytest.raises(MappingError, match="not found"):
        load_mapping("absent", search_dir=tmp_path)
