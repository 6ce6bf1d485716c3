"""The access log through the API and the admin page: admins only, filters, CSV, 4xx naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge.access import record_view
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from tests.support.factories import api_client, make_source
from tests.ui.test_pages import Browser

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _seed(engine: Engine) -> None:
    with session_scope(engine) as session:
        city = make_source(session, "city").id or 0
        north = make_source(session, "north").id or 0
    with time_machine.travel(T0, tick=False), session_scope(engine) as session:
        record_view(session, user="anna", route="ui.case", patients=[(city, "p1")])
        record_view(session, user="olga", route="ui.worklist", patients=[(north, "n1"), (north, "n2")])


def test_the_api_lists_and_filters_views(settings: Settings, engine: Engine) -> None:
    _seed(engine)
    client = api_client(settings)
    page = client.get("/api/v1/access-log").json()
    assert [e["username"] for e in page["entries"]] == ["olga", "anna"]
    assert page["next_before_id"] is None
    assert client.get("/api/v1/access-log", params={"source": "city", "patient": "p1"}).json()["entries"][0][
        "patients"
    ] == [{"source_id": 1, "patient_fhir_id": "p1"}]
    one = client.get("/api/v1/access-log", params={"limit": 1}).json()
    assert len(one["entries"]) == 1 and one["next_before_id"] == one["entries"][0]["id"]
    csv = client.get("/api/v1/access-log.csv", params={"username": "olga"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[1:] == [
        f"2,{T0.isoformat()},olga,ui.worklist,2,n1",
        f"2,{T0.isoformat()},olga,ui.worklist,2,n2",
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"since": "2026-11-01T00:00:00"}, "since"), ({"limit": "0"}, "limit"), ({"since": "yesterday"}, "since")],
)
def test_bad_filters_are_4xx_naming_the_field(
    settings: Settings, engine: Engine, params: dict[str, str], field: str
) -> None:
    response = api_client(settings).get("/api/v1/access-log", params=params)
    assert response.status_code == 422
    assert field in response.text


def test_only_admins_read_the_log(settings: Settings, engine: Engine) -> None:
    _seed(engine)
    coordinator = Browser(settings, engine, "anna", role="coordinator")
    assert coordinator.get("/access-log").status_code == 403
    assert coordinator.get("/api/v1/access-log").status_code == 403
    assert api_client(settings, token=None).get("/api/v1/access-log").status_code == 401


def test_the_admin_page_searches_and_links_the_csv(settings: Settings, engine: Engine) -> None:
    _seed(engine)
    admin = Browser(settings, engine, "root", role="admin", locale="ru")
    page = admin.get("/access-log?username=anna&since=2026-11-02&until=2026-11-02")
    assert page.status_code == 200
    assert "Журнал доступа" in page.text and "ui.case" in page.text and "ui.worklist" not in page.text
    assert "/api/v1/access-log.csv?username=anna&amp;since=2026-11-02T00%3A00%3A00%2B00%3A00" in page.text
    refused = admin.get("/access-log?since=someday")  # said on the page, not a 500
    assert refused.status_code == 200 and "Дату не удалось прочитать, она не учтена: since" in refused.text
