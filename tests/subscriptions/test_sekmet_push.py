"""Push from the EHR simulator (`sekmet-fhir`) to the real service on loopback.

The simulator sends classic rest-hook notifications (`PUT {endpoint}/Encounter/{id}`) and Backport
handshakes, heartbeats and event bundles; it retries a failed delivery, then marks the Subscription
`error` and sends nothing more. The service runs in uvicorn on a free port of 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.app import create_app
from discharge_bridge.assessment import drain
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import SyncRun
from discharge_bridge.subscriptions import inbox
from discharge_bridge.subscriptions.models import PayloadContent, SourceSubscription, SubscriptionKind
from discharge_bridge.subscriptions.recovery import RecoveryReason, check_subscription
from discharge_bridge.subscriptions.service import SubscribeRequest, subscribe_source
from tests.support.sekmet import SekmetServer

pytestmark = pytest.mark.slow

SECRET_ENV = "SIM_HOOK_SECRET"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ENCOUNTER_START = "http://sekmet.dev/fhir/SubscriptionTopic/encounter-start"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """The web app in uvicorn on a thread; stop() and start() again on the same port (an outage)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(create_app(self.settings), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)


@contextmanager
def running(settings: Settings) -> Iterator[Service]:
    service = Service(settings)
    service.start()
    try:
        yield service
    finally:
        service.stop()
        inbox._clients.clear()


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def flagged(engine: Engine) -> set[str]:
    with Session(engine) as session:
        query = select(RiskAssessment.encounter_fhir_id).where(
            col(RiskAssessment.flagged).is_(True), col(RiskAssessment.current).is_(True)
        )
        return set(session.exec(query))


def runs(engine: Engine, kind: str) -> int:
    with Session(engine) as session:
        return len(list(session.exec(select(SyncRun.id).where(SyncRun.kind == kind))))


def admit(server: SekmetServer, n: str) -> None:
    """An 86-year-old with dementia: the record first, then the admission (which notifies)."""

    def put(resource: dict[str, Any]) -> dict[str, Any]:
        return {
            "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
        }

    server.transaction(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                put({"resourceType": "Patient", "id": f"p{n}", "birthDate": "1940-03-02", "gender": "female"}),
                put(
                    {
                        "resourceType": "Condition",
                        "id": f"c{n}",
                        "subject": {"reference": f"Patient/p{n}"},
                        "clinicalStatus": {"coding": [{"code": "active"}]},
                        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "F03.90"}]},
                    }
                ),
            ],
        }
    )
    server.put(
        {
            "resourceType": "Encounter",
            "id": f"e{n}",
            "status": "in-progress",
            "class": {"system": V3, "code": "IMP"},
            "subject": {"reference": f"Patient/p{n}"},
            "period": {"start": "2026-11-20T10:15:00+03:00"},
        }
    )


@pytest.fixture
def sim(sekmet_factory: Any, monkeypatch: pytest.MonkeyPatch) -> SekmetServer:
    monkeypatch.setenv(SECRET_ENV, "simulated-hook-secret")
    server: SekmetServer = sekmet_factory(subscription_retries=2)
    return server


def _subscribe(engine: Engine, sim: SekmetServer, service: Service, **request: Any) -> SourceSubscription:
    with session_scope(engine) as session:
        add_source(session, name="sim", hospital="Simulated General", base_url=sim.base_url)
    fields = {"public_url": service.url, "secret_env": SECRET_ENV} | request
    (row,) = subscribe_source("sim", SubscribeRequest(**fields), engine=engine)
    return row


def _server_status(sim: SekmetServer, row: SourceSubscription) -> str:
    return str(sim.get(f"Subscription/{row.server_id}")["status"])


def test_classic_rest_hook_puts_an_admission_on_the_worklist_without_a_poll(
    sim: SekmetServer, engine: Engine, settings: Settings
) -> None:
    with running(settings) as service:
        row = _subscribe(engine, sim, service)
        wait_for(lambda: _server_status(sim, row) == "active", what="the Subscription to be active")
        admit(sim, "1")
        wait_for(lambda: "e1" in flagged(engine), what="e1 on the worklist")
    assert runs(engine, "poll") == 0 and runs(engine, "push") >= 1
    assert "X-Discharge-Bridge-Secret" in str(sim.get(f"Subscription/{row.server_id}")["channel"]["header"])


def test_backport_id_only_handshake_heartbeats_and_events(
    sim: SekmetServer, engine: Engine, settings: Settings
) -> None:
    with running(settings) as service:
        row = _subscribe(
            engine,
            sim,
            service,
            kind=SubscriptionKind.backport,
            topics=(ENCOUNTER_START,),
            content=PayloadContent.id_only,
            heartbeat_seconds=1,
        )
        wait_for(lambda: _server_status(sim, row) == "active", what="the handshake")
        admit(sim, "1")
        admit(sim, "2")
        wait_for(lambda: {"e1", "e2"} <= flagged(engine), what="both admissions on the worklist")

        def stored() -> SourceSubscription:
            with Session(engine) as session:
                return session.exec(select(SourceSubscription)).one()

        first_seen = stored().last_notification_at
        wait_for(lambda: stored().last_notification_at != first_seen, timeout=5, what="a heartbeat")
        state = stored()
    assert (state.status, state.last_event_number, state.missing_events) == ("active", 2, [])
    assert runs(engine, "poll") == 0


@pytest.mark.parametrize("kind", [SubscriptionKind.classic, SubscriptionKind.backport])
def test_a_receiver_outage_is_recovered_without_loss(
    sim: SekmetServer, engine: Engine, settings: Settings, kind: SubscriptionKind
) -> None:
    topics = (ENCOUNTER_START,) if kind == SubscriptionKind.backport else ()
    service = Service(settings)
    service.start()
    row = _subscribe(engine, sim, service, kind=kind, topics=topics)
    assert row.id is not None
    wait_for(lambda: _server_status(sim, row) == "active", what="the Subscription to be active")
    admit(sim, "0")
    wait_for(lambda: "e0" in flagged(engine), what="e0 by push")

    service.stop()  # the service is down while patients are admitted
    for n in ("1", "2", "3"):
        admit(sim, n)
    wait_for(lambda: _server_status(sim, row) == "error", timeout=30, what="the EHR to give up (status error)")
    # The other deliveries give up a moment later and would set `error` again after a re-activation
    # (the next scheduled check would then recover once more): let them finish first.
    time.sleep(3.5)
    assert flagged(engine) == {"e0"}

    service.start()
    try:
        outcome = check_subscription(row.id, engine=engine, settings=settings)  # the scheduled check
        drain(engine, settings)  # ... and the assessment of what its catch-up poll queued (subscriptions_job)
        assert outcome.reasons == [RecoveryReason.server_error] and outcome.recovered, outcome.error
        # On PostgreSQL a webhook's own drain may hold some entries (SKIP LOCKED): it finishes them.
        wait_for(lambda: flagged(engine) == {"e0", "e1", "e2", "e3"}, what="the catch-up's admissions assessed")
        wait_for(lambda: _server_status(sim, row) == "active", what="re-activation")
        admit(sim, "4")  # pushed again, no poll needed
        wait_for(lambda: "e4" in flagged(engine), what="e4 by push after the recovery")
    finally:
        service.stop()
        inbox._clients.clear()
    assert runs(engine, "poll") == 1
    with Session(engine) as session:
        stored = session.exec(select(SourceSubscription)).one()
    assert (
        stored.recoveries == 1 and stored.last_recovery_reason == "the EHR stopped the Subscription (status error/off)"
    )
