"""A hospital with one case and one of everything a route can name by id, and clients of the API.

The clock is fixed: date rules are judged against it (admitted 1 Nov 2026 09:30 Moscow time, see
tests.support.factories.put_encounter).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.cases.barriers import add_barrier
from discharge_bridge.cases.contacts.service import add_contact
from discharge_bridge.cases.handoffs.models import DestinationType
from discharge_bridge.cases.handoffs.service import create_handoff
from discharge_bridge.cases.models import BarrierCode
from discharge_bridge.cases.tasks.repository import list_tasks
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import DeadLetter
from discharge_bridge.ingest.store import record_dead_letter
from tests.subscriptions.conftest import ehr, fhir, stub_connections, subscribe  # noqa: F401 (the webhook's tests)
from tests.support.factories import api_client, flagged_case, make_source, make_user

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ward:
    """Ids of one hospital's objects: every id a route's path can name."""

    case_id: int
    task_id: int
    handoff_id: int
    barrier_id: int
    contact_id: int
    letter_id: int


@pytest.fixture
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def ward(engine: Engine, settings: Settings, clock: None) -> Ward:
    """Source "city" (UTC) with anna, a coordinator; a flagged case of hers with its first task, a
    handoff, a barrier, a contact added by hand; and a dead letter of the source."""
    with session_scope(engine) as session:
        source = make_source(session)
        assert source.id is not None
        make_user(session, "anna")
        case = flagged_case(session, source.id)
        case.coordinator = "anna"
        assert case.id is not None
        task = list_tasks(session, case.id)[0]
        handoff = create_handoff(
            session, case, actor="t", destination_type=DestinationType.relatives, mappings_dir=settings.mappings_dir
        )
        barrier = add_barrier(session, case, actor="t", code=BarrierCode.housing)
        contact = add_contact(session, case, actor="t", name="Olga", relationship="DAU", phones=[])
        record_dead_letter(session, source.id, {"resourceType": "Encounter", "id": "bad"}, "no status")
        letter = session.exec(select(DeadLetter)).one()
        assert task.id and handoff.id and barrier.id and contact.id and letter.id
        return Ward(case.id, task.id, handoff.id, barrier.id, contact.id, letter.id)


@pytest.fixture
def api(settings: Settings, ward: Ward) -> TestClient:
    """The service token (an admin of every hospital); a 5xx comes back as a status, not an exception."""
    client = api_client(settings)
    return TestClient(client.app, headers=dict(client.headers), raise_server_exceptions=False)
