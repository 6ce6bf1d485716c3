"""Schemathesis over the whole OpenAPI document the app serves: every operation, valid and invalid data
(the examples, coverage, fuzzing and stateful phases, links inferred from the responses), on the demo
hospital in process, on SQLite and on PostgreSQL (whose INTEGER ids and NUL-less text fail where
SQLite does not); no 5xx but /readyz's documented 503 (no scheduler runs here).

Two callers: the service token (an admin of every hospital: every phase, the coverage phase's
boundary values above all) and a coordinator's API token (fuzzing and stateful sequences, so the
scoping code runs). The budget is a number of examples per operation and phase, one pass of each
phase (no deadline: a busy machine takes longer, it does not test less): about a minute per database
on 2 idle cores. CI's reruns with the wall clock moved (.ci/run) leave out the coverage phase. The
webhook is called with the secret of a subscription of the demo hospital, so its bodies are read too.

Its figures (operations, requests, statuses, failures) are printed: ``pytest
tests/api/test_schemathesis.py -s``; ``SCHEMATHESIS_SECONDS=300`` hunts longer (the fuzzing and
stateful phases go round until then). The hypothesis database and schemathesis's cache stay off:
nothing is written into the checkout.
"""

from __future__ import annotations

import json
import os
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import events, from_schema

from discharge_bridge.app import create_app
from discharge_bridge.clock import CLOCK_START_ENV
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.demo import DEMO_SOURCE, prepare_demo
from discharge_bridge.sources.service import get_source
from discharge_bridge.subscriptions.models import SourceSubscription, SubscriptionKind
from discharge_bridge.subscriptions.service import SECRET_HEADER
from discharge_bridge.users.service import issue_token

pytestmark = pytest.mark.slow

MOVED_CLOCK = bool(os.environ.get(CLOCK_START_ENV))  # one of CI's reruns of every clock test
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5" if MOVED_CLOCK else "10"))
HUNT_SECONDS = int(os.environ.get("SCHEMATHESIS_SECONDS", "0")) or None
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "16"))
# The phases each caller runs (examples: the OpenAPI document has none to replay).
PHASES = {
    "admin": {"fuzzing", "stateful"} if MOVED_CLOCK else {"coverage", "fuzzing", "stateful"},
    "coordinator": {"fuzzing", "stateful"},
}
# The one documented 5xx: not ready while no scheduler heartbeats (app.readiness).
EXPECTED_5XX = {("GET", "/readyz", 503)}
HOOK_SECRET = "schemathesis-hook-secret"


@dataclass
class Figures:
    operations: int = 0
    tested: set[str] = field(default_factory=set)  # operations called in the examples, coverage, fuzzing phases
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    phases: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # 5xx and engine errors, one line each
    crashes: list[str] = field(default_factory=list)  # exceptions the app raised, with where

    def line(self, who: str) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        phases = ", ".join(f"{name.lower()}: {n}" for name, n in sorted(self.phases.items()))
        return (
            f"schemathesis as {who}: {len(self.tested)} of {self.operations} operations, {self.requests} requests "
            f"({phases}); statuses {statuses}; {len(self.failures)} failures"
        )


class Recorder:
    """The app, with what it raised recorded: the in-process transport would raise it in the test
    instead of returning the 500 a real server sends (Starlette has sent it by then)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.crashes: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = False

        async def sending(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if not started:
                raise
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.crashes.append(
                f"{scope.get('method')} {scope.get('path')}: {type(exc).__name__} at {where.filename}:{where.lineno}"
            )


@pytest.fixture
def demo(settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    """The demo hospital in a fresh database (SQLite, PostgreSQL); tokens of the service (admin) and of
    anna (coordinator); a classic subscription of the demo source whose webhook secret is a file."""
    settings, _ = prepare_demo(settings)
    assert settings.api_token is not None
    secret = tmp_path / "hook-secret"
    secret.write_text(HOOK_SECRET)
    with session_scope(get_engine(settings)) as session:
        source = get_source(session, DEMO_SOURCE)
        assert source.id is not None
        session.add(
            SourceSubscription(
                source_id=source.id,
                kind=SubscriptionKind.classic,
                criteria="Encounter?status=in-progress",
                endpoint=f"http://127.0.0.1/webhooks/{DEMO_SOURCE}",
                secret_file=str(secret),
            )
        )
        coordinator = issue_token(session, "anna", "schemathesis")
    yield settings, {"admin": settings.api_token.get_secret_value(), "coordinator": coordinator}
    get_engine(settings).dispose()


def run(settings: Settings, token: str, phases: set[str]) -> Figures:
    recorder = Recorder(create_app(settings))
    headers = {"Authorization": f"Bearer {token}", SECRET_HEADER: HOOK_SECRET}
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            **({"max-time": HUNT_SECONDS} if HUNT_SECONDS else {}),
            "headers": headers,
            "workers": 1,
            "request-timeout": 30,
            "cache": {"enabled": False},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {name: {"enabled": name in phases} for name in ("examples", "coverage", "fuzzing", "stateful")},
            # 5xx are counted below, from every response (so /readyz's 503 can be told apart).
            "checks": {"enabled": False},
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", recorder, config=config, headers=headers)
    figures = Figures(operations=schema.statistic.operations.total)
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.phase.name != "STATEFUL_TESTING" and event.recorder.interactions:
                figures.tested.add(event.recorder.label)
            for interaction in event.recorder.interactions.values():
                figures.requests += 1
                figures.phases[event.phase.name] += 1
                if interaction.response is None:
                    continue
                status = interaction.response.status_code
                figures.statuses[status] += 1
                method, path = interaction.request.method, _path(interaction.request.uri)
                if status >= 500 and (method, path, status) not in EXPECTED_5XX:
                    body = interaction.request.body
                    figures.failures.append(f"{status} {method} {interaction.request.uri} {body!r:.300}")
        elif isinstance(event, events.NonFatalError):
            figures.failures.append(f"error in {event.label}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            figures.failures.append(f"fatal: {event.exception!r}")
    figures.crashes = recorder.crashes
    return figures


def _path(uri: str) -> str:
    return "/" + uri.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]


def test_no_operation_answers_a_5xx(
    demo: tuple[Settings, dict[str, str]], capsys: pytest.CaptureFixture[str], record_property: Any
) -> None:
    settings, tokens = demo
    found = {who: run(settings, tokens[who], PHASES[who]) for who in ("admin", "coordinator")}
    report = [figures.line(who) for who, figures in found.items()]
    with capsys.disabled():
        print("\n" + "\n".join(report))
    record_property("schemathesis", json.dumps({who: f.line(who) for who, f in found.items()}))
    for who, figures in found.items():
        assert figures.operations >= 40 and len(figures.tested) == figures.operations, figures.line(who)
        assert figures.phases["STATEFUL_TESTING"], figures.line(who)  # sequences along the inferred links
        assert figures.statuses[200] and figures.statuses[201], figures.line(who)  # reads and writes went through
        assert figures.statuses[422], figures.line(who)  # and invalid data was refused
        assert figures.failures == [] and figures.crashes == [], (
            figures.line(who),
            figures.failures[:20],
            figures.crashes[:20],
        )
    assert found["coordinator"].statuses[403], found["coordinator"].line("coordinator")  # hospital IT's, the logs
