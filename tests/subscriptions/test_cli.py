"""`sources subscribe / unsubscribe` and `backfill` as hospital IT runs them (stub EHR behind the client)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from discharge_bridge.audit import AdminAuditEntry
from discharge_bridge.cli import app
from discharge_bridge.config import get_settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.fhir import FhirClient, RetryPolicy
from tests.subscriptions.conftest import SECRET, SECRET_ENV
from tests.subscriptions.stub_ehr import StubEhr
from tests.support.fakefhir import BASE, condition, encounter, patient

runner = CliRunner()


@pytest.fixture
def ehr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StubEhr]:
    stub = StubEhr()
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    monkeypatch.setenv(SECRET_ENV, SECRET)

    def client(source: object, **kwargs: object) -> FhirClient:
        return FhirClient(BASE, transport=stub.transport(), retry=RetryPolicy(max_attempts=2, sleep=lambda s: None))

    monkeypatch.setattr("discharge_bridge.subscriptions.service.client_for", client)
    monkeypatch.setattr("discharge_bridge.sources.service.client_for", client)
    monkeypatch.setattr("discharge_bridge.cli.sync.client_for", client)  # the CLI's own binding
    get_settings.cache_clear()
    result = runner.invoke(app, ["sources", "add", "city", "--hospital", "City", "--base-url", BASE])
    assert result.exit_code == 0, result.output
    yield stub
    get_settings.cache_clear()


def _run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_subscribe_list_and_unsubscribe(ehr: StubEhr) -> None:
    out = _run("sources", "subscribe", "city", "--public-url", "https://bridge.test", "--secret-env", SECRET_ENV)
    assert "classic Subscription/sub1 (active)" in out
    assert "https://bridge.test/webhooks/city" in out and "X-Discharge-Bridge-Secret" in out
    assert SECRET not in out
    (listed,) = json.loads(_run("sources", "list", "--format", "json"))
    assert (listed["mode"], listed["push"]) == ("subscription", "classic active")
    assert SECRET not in _run("sources", "list")

    again = _run(
        "sources", "subscribe", "city", "--public-url", "https://bridge.test", "--secret-env", SECRET_ENV, code=1
    )
    assert "already subscribed" in again
    assert "unsubscribed" in _run("sources", "unsubscribe", "city")
    assert ehr.subscriptions == {}
    with session_scope(get_engine()) as session:
        audit = [(e.action, e.target_name, e.details) for e in session.exec(select(AdminAuditEntry))]
    assert [(action, name) for action, name, _ in audit] == [
        ("source.add", "city"),
        ("subscription.add", "city"),  # the refused second one left no entry
        ("subscription.remove", "city"),
    ]
    added = audit[1][2]
    assert added["subscriptions"] == ["classic Subscription/sub1 for Encounter?class=IMP,ACUTE,NONAC"], added
    assert (added["endpoint"], added["secret_env"]) == ("https://bridge.test/webhooks/city", SECRET_ENV)
    assert SECRET not in json.dumps([details for *_, details in audit])
    (listed,) = json.loads(_run("sources", "list", "--format", "json"))
    assert (listed["mode"], listed["push"]) == ("poll", "")


def test_subscribe_mistakes_are_explained(ehr: StubEhr) -> None:
    bad_kind = _run(
        "sources", "subscribe", "city", "--public-url", "https://b", "--secret-env", SECRET_ENV, "--kind", "x", code=2
    )
    assert "classic or backport" in bad_kind
    no_topic = _run(
        "sources",
        "subscribe",
        "city",
        "--public-url",
        "https://b",
        "--secret-env",
        SECRET_ENV,
        "--kind",
        "backport",
        code=1,
    )
    assert "--topic" in no_topic
    ehr.fail = lambda request: httpx.Response(403)
    refused = _run("sources", "subscribe", "city", "--public-url", "https://b", "--secret-env", SECRET_ENV, code=1)
    assert "the EHR refused the Subscription" in refused and "scopes" in refused


def test_backfill_command(ehr: StubEhr) -> None:
    ehr.put(patient("p1"))
    ehr.put(condition("c1", "p1"))
    ehr.put(encounter("e1", "p1"))
    ehr.polls_before_ready = 0
    row = json.loads(_run("backfill", "city", "--format", "json"))
    assert (row["status"], row["ingested"], row["new"], row["flagged"], row["resumed"]) == ("ok", 3, 3, 1, False)
    assert row["cursor"] == row["transaction_time"]
    table = _run("backfill", "city")
    assert "transaction_time" in table and "since" in table
    ehr.kickoff_faults = [httpx.Response(400)]
    failed = _run("backfill", "city", code=1)
    assert "instead of 202" in failed or "400" in failed
