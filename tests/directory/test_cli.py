"""discharge-bridge directory import / export: CSV and FHIR, audited as the terminal's user, all or nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.cli import app
from discharge_bridge.config import PROJECT_ROOT, get_settings
from discharge_bridge.db import get_engine, session_scope

runner = CliRunner()
DEMO = PROJECT_ROOT / "mappings" / "directory_demo.csv"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_import_export_and_import_the_bundle_back(tmp_path: Path) -> None:
    first = runner.invoke(app, ["directory", "import", str(DEMO)])
    assert first.exit_code == 0, first.output
    assert "services: 15 added, 0 changed" in first.output
    exported = runner.invoke(app, ["directory", "export", "--format", "csv"])
    assert exported.exit_code == 0 and exported.output.splitlines()[0].startswith("organisation_code,")
    assert len(exported.output.strip().splitlines()) == 16
    bundle = tmp_path / "directory.json"
    assert runner.invoke(app, ["directory", "export", "--format", "fhir", "-o", str(bundle)]).exit_code == 0
    assert json.loads(bundle.read_text())["resourceType"] == "Bundle"
    again = runner.invoke(app, ["directory", "import", str(bundle)])
    assert again.exit_code == 0, again.output
    assert "28 unchanged" in again.output
    with session_scope(get_engine()) as session:
        imports = search_audit(session, AuditQuery(action="directory.import"))
    assert [e.target_name for e in imports] == ["directory.json", "directory_demo.csv"]
    assert all(e.actor.startswith("cli:") for e in imports)


def test_a_bad_file_imports_nothing_and_lists_its_problems(tmp_path: Path) -> None:
    lines = DEMO.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace(",home_care,", ",spa,", 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["directory", "import", str(bad)])
    assert result.exit_code == 1
    assert "bad.csv: line 3, category:" in result.output and "nothing was imported" in result.output
    exported = runner.invoke(app, ["directory", "export"])
    assert exported.output.strip().splitlines()[1:] == []
    wrong = tmp_path / "directory.txt"
    wrong.write_text("x")
    assert runner.invoke(app, ["directory", "import", str(wrong)]).exit_code == 1
    assert runner.invoke(app, ["directory", "export", "--format", "xml"]).exit_code == 1
