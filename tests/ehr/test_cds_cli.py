"""``sources set --cds-*``: a source's CDS Hooks client set, checked and audited from the terminal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.cli import app
from discharge_bridge.config import get_settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.sources.models import Source

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _cds(name: str) -> dict[str, object]:
    with session_scope(get_engine()) as session:
        return dict(session.exec(select(Source).where(Source.name == name)).one().cds_hooks)


def test_cds_settings_are_set_audited_and_cleared() -> None:
    _ok("sources", "add", "city", "--hospital", "City", "--base-url", "https://ehr.example/fhir")
    _ok(
        "sources", "set", "city",
        "--cds-issuer", "https://ehr.example/",
        "--cds-jwks-url", "https://ehr.example/jwks",
        "--cds-origin", "https://ehr.example/",
        "--cds-algorithms", "RS384,es256",
    )  # fmt: skip
    assert _cds("city") == {
        "issuer": "https://ehr.example/",
        "jwks_url": "https://ehr.example/jwks",
        "origins": ["https://ehr.example"],
        "algorithms": ["RS384", "ES256"],
    }
    with session_scope(get_engine()) as session:
        entry = search_audit(session, AuditQuery(target_name="city"))[0]
    assert entry.action == "source.edit"
    assert entry.details["cds_hooks"]["from"] == {}
    assert entry.details["cds_hooks"]["to"]["issuer"] == "https://ehr.example/"
    _ok("sources", "set", "city", "--cds-off")
    assert _cds("city") == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cds-algorithms", "HS256"], "CDS Hooks algorithms are some of"),
        (["--cds-jwks-url", "ftp://ehr.example/jwks"], "must be an http(s) URL"),
        (["--cds-origin", "https://ehr.example/path"], "a CORS origin is scheme://host[:port]"),
        (["--cds-jwks-url", "http://169.254.169.254/keys"], "169.254.169.254"),  # a cloud metadata address
    ],
)
def test_bad_cds_settings_are_refused(args: list[str], message: str) -> None:
    _ok("sources", "add", "city", "--hospital", "City", "--base-url", "https://ehr.example/fhir")
    result = runner.invoke(app, ["sources", "set", "city", *args])
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())
    assert _cds("city") == {}


def test_two_sources_never_share_an_issuer() -> None:
    _ok("sources", "add", "city", "--hospital", "City", "--base-url", "https://ehr.example/fhir")
    _ok("sources", "add", "north", "--hospital", "North", "--base-url", "https://north.example/fhir")
    _ok("sources", "set", "city", "--cds-issuer", "https://ehr.example/")
    result = runner.invoke(app, ["sources", "set", "north", "--cds-issuer", "https://ehr.example/"])
    assert result.exit_code == 1
    assert "source city already uses CDS Hooks issuer" in " ".join(result.output.split())
