"""Re-scoring after a rule or mapping change: a fingerprint of the files as loaded decides; the job runs a
forced re-score only for sources whose files changed. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner

from discharge_bridge.config import PROJECT_ROOT, Settings, get_settings
from discharge_bridge.connections.service import update_source
from discharge_bridge.db import get_engine, session_scope, upgrade
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.scheduling import rescore
from discharge_bridge.scheduling.jobs import rescore_check_job
from discharge_bridge.sources.service import get_source
from tests.support.factories import make_source, put_encounter


@pytest.fixture
def mappings(tmp_path: Path) -> Path:
    folder = tmp_path / "mappings"
    shutil.copytree(PROJECT_ROOT / "mappings", folder)
    return folder


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every re-score the job starts, by source and force; the real re-score still runs."""
    seen: list[tuple[str, bool]] = []
    real = rescore.assess_and_follow

    def spy(engine: Engine, name: str, settings: Settings, **kwargs: Any) -> Any:
        seen.append((name, kwargs.get("force", False)))
        return real(engine, name, settings, **kwargs)

    monkeypatch.setattr(rescore, "assess_and_follow", spy)
    return seen


def _touch(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n# {line}\n")


def test_rescore_runs_when_the_files_change_and_not_otherwise(
    engine: Engine, settings: Settings, mappings: Path, calls: list[tuple[str, bool]]
) -> None:
    settings = settings.model_copy(update={"mappings_dir": mappings})
    with session_scope(engine) as session:
        for name in ("msk", "nyc"):
            put_encounter(session, make_source(session, name).id or 0, f"adm-{name}", f"p-{name}")
        update_source(session, "msk", {"mapping": "city-hospital"}, mappings_dir=mappings)

    first = datetime(2026, 3, 7, 4, 0, tzinfo=UTC)
    with time_machine.travel(first, tick=False):
        rescore_check_job(settings)  # never scored with a fingerprint: both, forced
    assert calls == [("msk", True), ("nyc", True)]
    with session_scope(engine) as session:
        for name in ("msk", "nyc"):
            source = get_source(session, name)
            assert source.scoring_fingerprint == rescore.scoring_fingerprint(source, settings)
        assert {r.assessed_at for r in session.exec(select(RiskAssessment))} == {first}
        msk_print = get_source(session, "msk").scoring_fingerprint
        assert msk_print != get_source(session, "nyc").scoring_fingerprint  # their mappings differ

    calls.clear()
    rescore_check_job(settings)
    rescore_check_job(settings)
    assert calls == []  # nothing changed: nothing re-scored

    _touch(mappings / "city-hospital.yaml", "a site mapping edit")  # msk's mapping only
    rescore_check_job(settings)
    assert calls == [("msk", True)]

    calls.clear()
    _touch(mappings / "default.yaml", "extended by city-hospital, used by nyc")
    second = datetime(2026, 3, 7, 5, 0, tzinfo=UTC)
    with time_machine.travel(second, tick=False):
        rescore_check_job(settings)
    assert calls == [("msk", True), ("nyc", True)]
    with session_scope(engine) as session:
        assert {r.assessed_at for r in session.exec(select(RiskAssessment))} == {second}  # forced: all rows

    calls.clear()
    _touch(mappings / "rules.yaml", "a rule change")
    rescore_check_job(settings)
    assert calls == [("msk", True), ("nyc", True)]


def test_a_broken_file_is_logged_and_the_fingerprint_kept(
    engine: Engine,
    settings: Settings,
    mappings: Path,
    calls: list[tuple[str, bool]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings.model_copy(update={"mappings_dir": mappings})
    with session_scope(engine) as session:
        make_source(session, "msk")
    rescore_check_job(settings)
    with session_scope(engine) as session:
        kept = get_source(session, "msk").scoring_fingerprint
    good = (mappings / "rules.yaml").read_text()
    (mappings / "rules.yaml").write_text("version: [unclosed\n")
    calls.clear()
    with caplog.at_level(logging.ERROR):
        rescore_check_job(settings)  # does not raise
    assert calls == [] and "RuleSetError" in caplog.text
    with session_scope(engine) as session:
        assert get_source(session, "msk").scoring_fingerprint == kept
    (mappings / "rules.yaml").write_text(good + "\n# fixed\n")
    rescore_check_job(settings)
    assert calls == [("msk", True)]


def test_the_rescore_command_stores_the_fingerprint(
    tmp_path: Path, mappings: Path, monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, bool]]
) -> None:
    from discharge_bridge.cli import app

    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DISCHARGE_BRIDGE_MAPPINGS_DIR", str(mappings))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        upgrade()
        with session_scope(get_engine()) as session:
            put_encounter(session, make_source(session, "city").id or 0, "adm1", "p1")
        result = CliRunner().invoke(app, ["rescore"])
        assert result.exit_code == 0, result.output
        assert calls == [("city", False)]  # `rescore` without --force re-scores what changed
        with session_scope(get_engine()) as session:
            city = get_source(session, "city")
            assert city.scoring_fingerprint == rescore.scoring_fingerprint(city, get_settings())
        calls.clear()
        rescore_check_job(get_settings())
        assert calls == []  # the scheduler sees it as scored with these files
    finally:
        get_settings.cache_clear()
