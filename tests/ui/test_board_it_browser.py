"""The bed board and the hospital IT page in Debian's Chromium, on the demo hospital.

A bed manager sees a pending discharge (made medically ready four days ago through the API) with
its delay, filters by ward and downloads the CSV; the IT admin sees the demo source's two dead
letters, runs the connection check (a file source: the folder check) and replays a letter; the
bed manager may not open the IT page. Screenshots at the tablet viewport go to /tmp.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LiveServer, sign_in

pytestmark = pytest.mark.slow  # the conftest's own pytestmark does not reach test modules
SHOTS = Path("/tmp")


def _make_ready(server: LiveServer, days: float) -> dict[str, Any]:
    """Mark the oldest open case of the demo medically ready ``days`` ago; return its detail."""
    with server.api() as api:
        cases = api.get("/api/v1/cases", params={"status": "open", "limit": 1}).raise_for_status().json()
        case_id = cases["items"][0]["id"]
        ready = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        return api.patch(f"/api/v1/cases/{case_id}", json={"medically_ready_at": ready}).raise_for_status().json()


def test_a_bed_manager_sees_the_pending_discharge_filters_and_downloads(live_server: LiveServer, page: Any) -> None:
    case = _make_ready(live_server, 4)
    sign_in(page, live_server, "boris")
    assert page.url.endswith("/board")
    first = page.locator("table.board tbody tr").first
    assert case["patient"] in first.inner_text()  # medically ready comes first
    assert first.locator("[data-days-delayed]").inner_text() == "4.0"
    assert page.locator(".stat-value").first.inner_text() == "1"  # ready, not discharged
    assert page.get_by_role("img", name="Ready-to-discharge delay per week").is_visible()
    page.screenshot(path=str(SHOTS / "board.png"), full_page=True)

    page.get_by_label("Ward").select_option(case["ward"])
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/board?ward=*")
    wards = page.locator("table.board tbody tr td:first-child").all_inner_texts()
    assert wards and all(w.startswith(case["ward"]) for w in wards)
    assert case["patient"] in page.locator("table.board").inner_text()

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    body = Path(download.value.path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    lines = body.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Hospital,Ward,Bed,Patient (FHIR id)")
    assert len(lines) == 1 + len(wards) and case["patient"] in lines[1] and ",4.0," in lines[1]


def test_the_board_in_russian_for_a_russian_coordinator(live_server: LiveServer, page: Any) -> None:
    sign_in(page, live_server, "dmitry")  # the demo's Russian-speaking coordinator
    page.goto(f"{live_server.base_url}/board")
    assert page.get_by_role("heading", level=1).inner_text() == "Коечный фонд"
    assert "Потеряно койко-дней" in page.locator(".totals").inner_text()
    page.screenshot(path=str(SHOTS / "board-ru.png"), full_page=True)


def test_an_it_admin_checks_the_connection_and_replays_a_dead_letter(live_server: LiveServer, page: Any) -> None:
    sign_in(page, live_server, "irina")
    assert page.url.endswith("/it")
    card = page.locator("#source-demo")
    assert "Dead letters: 2" in card.inner_text()
    letters = card.locator("tr[id^=letter-]")
    assert letters.count() == 2
    assert "Encounter has no subject reference to a Patient" in card.inner_text()

    card.get_by_role("button", name="Check connection").click()  # htmx swaps the source's card
    results = page.locator("#source-demo .check-items")
    results.wait_for()
    text = results.inner_text()
    assert "not a FHIR server" in text and "not valid JSON (Encounter.broken.ndjson line 2)" in text
    assert "Encounter" in text and "resources" in text
    page.screenshot(path=str(SHOTS / "it-check.png"), full_page=True)

    letter_id = page.locator("#source-demo tr[id^=letter-]").first.get_attribute("id").removeprefix("letter-")
    page.get_by_role("button", name=f"Replay dead letter {letter_id}").click()
    notice = page.locator("#source-demo .notices .notice")
    notice.wait_for()
    # A file source re-reads the stored record: the file still has it broken, so it stays a dead letter.
    assert f"Dead letter {letter_id} is still a dead letter: still" in notice.inner_text()
    assert "Dead letters: 2" in page.locator("#source-demo").inner_text()
    assert page.locator(f"#letter-{letter_id}").is_visible()
    page.screenshot(path=str(SHOTS / "it-replay.png"), full_page=True)


def test_a_bed_manager_may_not_open_the_it_page(live_server: LiveServer, page: Any) -> None:
    sign_in(page, live_server, "boris")
    response = page.goto(f"{live_server.base_url}/it")
    assert response is not None and response.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == "Not allowed"
    assert "Hospital IT" not in page.locator("nav").inner_text()  # not offered in the navigation either
