"""Logs: one line per event, the route template instead of the path, and no patient data anywhere."""

from __future__ import annotations

import logging
import logging.config
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.demo import DEMO_DATA, prepare_demo
from discharge_bridge.fhir import FhirTemporaryError
from discharge_bridge.logs import (
    CAPPED_LOGGERS,
    FORMAT,
    HANDLER_NAME,
    InvalidLogLevel,
    OneLineFormatter,
    configure_logging,
    uvicorn_log_config,
)

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging and dictConfig change process-wide state: put it back after the test."""
    names = ("", *CAPPED_LOGGERS, *UVICORN_LOGGERS)
    saved = {
        n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
        for n in names
    }
    yield
    for name, (level, handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def _record_with(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException as raised:
        return logging.LogRecord(
            "t",
            logging.ERROR,
            __file__,
            1,
            "sync failed\nfor %s",
            ("city",),
            (type(raised), raised, raised.__traceback__),
        )


def test_tracebacks_keep_frames_and_types_but_withhold_messages() -> None:
    formatter = OneLineFormatter(FORMAT)
    try:
        try:
            raise KeyError("MRN400101")
        except KeyError as inner:
            raise ValueError("input_value='Kulikova Tamara'") from inner
    except ValueError as exc:
        line = formatter.format(_record_with(exc))
    assert "\n" not in line
    assert "sync failed | for city" in line
    assert "ValueError (message withheld" in line and "caused by KeyError (message withheld" in line
    assert "test_logs.py:" in line  # where it happened is kept
    assert "Kulikova" not in line and "MRN400101" not in line

    safe = formatter.format(_record_with(FhirTemporaryError("GET /fhir/Patient -> 503", status_code=503)))
    assert "FhirTemporaryError: GET /fhir/Patient -> 503" in safe


def test_configure_logging_is_idempotent_and_caps_chatty_libraries(restore_logging: None) -> None:
    configure_logging(Settings(log_level="debug"))
    configure_logging(Settings(log_level="DEBUG"))
    root = logging.getLogger()
    assert [h.get_name() for h in root.handlers].count(HANDLER_NAME) == 1
    assert root.level == logging.DEBUG
    # httpx logs full request URLs (Patient?_id=...), SQLAlchemy statements with their parameters.
    assert all(logging.getLogger(name).level == logging.WARNING for name in CAPPED_LOGGERS)
    configure_logging(Settings(log_level="ERROR"))
    assert logging.getLogger("httpx").level == logging.ERROR
    with pytest.raises(InvalidLogLevel, match="LOG_LEVEL='chatty'"):
        configure_logging(Settings(log_level="chatty"))


def test_the_uvicorn_config_drops_the_access_log(restore_logging: None, caplog: pytest.LogCaptureFixture) -> None:
    logging.config.dictConfig(uvicorn_log_config())
    caplog.set_level(logging.DEBUG)
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO)  # what uvicorn.run(log_level="info") does after applying the config
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/api/v1/cases?patient=demo-pat-001", "1.1", 200)
    logging.getLogger("uvicorn.error").info("Uvicorn running")
    assert [r.getMessage() for r in caplog.records] == ["Uvicorn running"]


@pytest.mark.slow
def test_a_real_uvicorn_server_logs_templates_only(
    restore_logging: None, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn with the config the CLI passes, its access log left on: no raw path or query in any line."""
    import uvicorn

    configure_logging(settings.model_copy(update={"log_level": "DEBUG"}))  # as the CLI does before uvicorn.run
    caplog.set_level(logging.DEBUG)
    config = uvicorn.Config(create_app(settings), log_config=uvicorn_log_config(), log_level="info", lifespan="off")
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/v1/cases/4711?patient=demo-pat-001").status_code == 401
        assert httpx.get(f"{base}/healthz?patient=demo-pat-001").status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    lines = [OneLineFormatter(FORMAT).format(r) for r in caplog.records]
    assert any("GET /api/v1/cases/{case_id} 401" in line for line in lines)
    assert not [line for line in lines if "demo-pat-001" in line or "4711" in line]


# --- patient data never reaches a log ----------------------------------------------------------


def _phi_of_demo_hospital() -> set[str]:
    """Names, birth dates, identifier values (MRNs), phone numbers, address lines and Patient /
    RelatedPerson ids."""
    found: set[str] = set()

    def addresses(entries: list[dict[str, Any]]) -> None:
        for address in entries:
            found.update(part for part in [address.get("text"), *address.get("line", [])] if part)

    def names(entries: list[dict[str, Any]]) -> None:
        for name in entries:
            found.update(part for part in [name.get("family"), name.get("text"), *name.get("given", [])] if part)

    for kind in ("Patient", "RelatedPerson"):
        for line in (DEMO_DATA / f"{kind}.ndjson").read_text().splitlines():
            resource = orjson.loads(line)
            found.add(resource["id"])
            names(resource.get("name", []))
            found.update(i["value"] for i in resource.get("identifier", []) if i.get("value"))
            found.update(t["value"] for t in resource.get("telecom", []) if t.get("value"))
            addresses(resource.get("address", []))
            for contact in resource.get("contact", []):
                names([contact["name"]] if "name" in contact else [])
                found.update(t["value"] for t in contact.get("telecom", []) if t.get("value"))
                addresses([contact["address"]] if "address" in contact else [])
            birth = resource.get("birthDate", "")
            if len(birth) >= 7:  # a bare year would match unrelated numbers; month-precise dates cannot
                found.add(birth)
    return found


def test_no_patient_data_in_any_log_record(
    tmp_path: Path, restore_logging: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A real sync of the demo hospital and a tour of the API, everything logged at DEBUG."""
    base = Settings(data_dir=tmp_path / "data", log_level="DEBUG")
    configure_logging(base)
    caplog.set_level(logging.DEBUG)
    settings, result = prepare_demo(base)
    assert result.fetched > 100 and result.dead_letters > 0
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    client = TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"})
    worklist = client.get("/api/v1/worklist").json()["items"]
    patient = worklist[0]["patient"]
    cases = client.get("/api/v1/cases", params={"limit": 5}).json()["items"]
    for case in cases:
        assert client.get(f"/api/v1/cases/{case['id']}").status_code == 200
        assert client.get(f"/api/v1/cases/{case['id']}/timeline").status_code == 200
        tasks = client.get(f"/api/v1/cases/{case['id']}/tasks").json()
        patched = client.patch(
            f"/api/v1/tasks/{tasks[0]['id']}",
            json={"status": "accepted"},
            headers={"If-Match": f'"{tasks[0]["version"]}"'},
        )
        assert patched.status_code == 200, patched.text
    # The surfaces that show who the patient is: a search by name, the board, contacts, the access log.
    named = client.get("/api/v1/worklist", params={"limit": 5}).json()["items"]
    name = next(item["name"] for item in named if item.get("name"))
    found = client.get("/api/v1/worklist", params={"q": name.split()[0]}).json()["items"]
    assert found and all(item["name"] for item in found)
    assert client.get("/api/v1/board").status_code == 200
    for case in cases:
        contacts = client.get(f"/api/v1/cases/{case['id']}/contacts")
        assert contacts.status_code == 200, contacts.text
        assert client.get(f"/api/v1/cases/{case['id']}/contact-log").status_code == 200
    assert client.get("/api/v1/access-log").json()["entries"]
    assert client.get("/api/v1/access-log.csv").status_code == 200
    assert client.get("/api/v1/sources/demo/deadletters").status_code == 200
    assert client.get("/api/v1/cases", params={"patient": patient}).status_code == 200  # an unknown parameter
    assert client.get(f"/api/v1/sources/{patient}").status_code == 404  # an id where a name belongs
    assert client.get(f"/nowhere/{patient}").status_code == 404
    assert client.get("/metrics").status_code == 200

    phi = _phi_of_demo_hospital()
    assert patient in phi and len(phi) > 100
    formatter = OneLineFormatter(FORMAT)
    lines = [formatter.format(r) for r in caplog.records]
    assert any("GET /api/v1/cases/{case_id} 200" in line for line in lines)  # the tour was logged
    leaks = sorted({(needle, line) for line in lines for needle in phi if needle in line})
    assert not leaks, "\n".join(f"{needle!r} in: {line}" for needle, line in leaks[:20])
