"""risk.loading: one parse per version of a file, an edit seen at the next call, errors never kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from discharge_bridge.risk import MappingError, RuleSetError, loading

RULES = 'version: "{v}"\nthresholds: {{high: 8, medium: 4, low: 2}}\nconcepts:\n  lives_alone: {{points: 4}}\n'


def touch_later(path: Path) -> None:
    """Move the modification time on by a second: an edit in the same clock tick, same size."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_rule_set_is_parsed_once_per_version_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(v="1"))
    first = loading.rule_set(tmp_path)
    assert first.version == "1" and loading.rule_set(tmp_path) is first
    path.write_text(RULES.format(v="2"))  # same size: the modification time tells
    touch_later(path)
    assert loading.rule_set(tmp_path).version == "2"
    path.write_text(RULES.format(v="33"))  # a longer file, whatever the clock says
    assert loading.rule_set(tmp_path).version == "33"


def test_a_broken_edit_is_reported_at_every_call_until_fixed(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(v="1"))
    assert loading.rule_set(tmp_path).version == "1"
    path.write_text("version: [unclosed\n")
    for _ in range(2):
        with pytest.raises(RuleSetError, match="not valid YAML"):
            loading.rule_set(tmp_path)
    path.unlink()
    with pytest.raises(RuleSetError, match="not found"):
        loading.rule_set(tmp_path)
    path.write_text(RULES.format(v="fixed"))
    assert loading.rule_set(tmp_path).version == "fixed"


def test_an_edit_of_the_file_a_mapping_extends_reloads_it(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("encounters: {inpatient_classes: [IMP]}\n")
    (tmp_path / "site.yaml").write_text("extends: base\nencounters: {readmission_days: 28}\n")
    first = loading.mapping("site", tmp_path)
    assert first.encounters.inpatient_classes == ["IMP"] and loading.mapping("site", tmp_path) is first
    base.write_text("encounters: {inpatient_classes: [ACUTE]}\n")
    again = loading.mapping("site", tmp_path)
    assert again.encounters.inpatient_classes == ["ACUTE"] and again.encounters.readmission_days == 28
    base.write_text("encounters: {inpatient_classes: ACUTE}\n")
    with pytest.raises(MappingError, match="inpatient_classes"):
        loading.mapping("site", tmp_path)
    with pytest.raises(MappingError, match="not found"):
        loading.mapping("elsewhere", tmp_path)


def test_a_file_edited_while_it_is_read_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "value.txt"
    path.write_text("old")
    reads: list[str] = []

    def load() -> tuple[str, tuple[str]]:
        value = path.read_text()
        reads.append(value)
        if len(reads) == 1:
            path.write_text("newer")  # the edit lands after the read, before the load returns
        return value, (str(path),)

    assert loading.cached(("test", str(path)), load, (str(path),)) == "old"
    assert loading.cached(("test", str(path)), load, (str(path),)) == "newer"
    assert loading.cached(("test", str(path)), load, (str(path),)) == "newer"
    assert reads == ["old", "newer"]
