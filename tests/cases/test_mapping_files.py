"""The coordination files of mappings/ (dispositions, checklists) through risk.loading's cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from discharge_bridge.cases.errors import ConfigError
from discharge_bridge.cases.mapping_files import load_yaml_model


class _Checklist(BaseModel):
    documents: dict[str, str]


def test_coordination_files_share_the_cache_and_report_each_broken_edit(tmp_path: Path) -> None:
    path = tmp_path / "documents.yaml"
    path.write_text("documents: {passport: Passport}\n")
    first = load_yaml_model(path, _Checklist)
    assert load_yaml_model(path, _Checklist) is first
    path.write_text("documents: {passport: Passport, policy: Insurance policy}\n")
    assert set(load_yaml_model(path, _Checklist).documents) == {"passport", "policy"}
    path.write_text("documents: [passport]\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="documents"):
            load_yaml_model(path, _Checklist)
    with pytest.raises(ConfigError, match="missing"):
        load_yaml_model(tmp_path / "nowhere.yaml", _Checklist)
