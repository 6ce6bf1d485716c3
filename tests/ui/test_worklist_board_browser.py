"""Two journeys in Debian's Chromium at a tablet's 1024x768, on the demo hospital, in English and in
Russian: a coordinator finds a patient by name (then by MRN) on the worklist and opens the case; a
bed manager reads the bed board's totals per ward, checks them against the rows and the API, and
narrows the board to one ward. Screenshots of each page are kept under the run's pytest folder
(``artifacts/``), never in the repository.

The demo is served once for this module's tests (a copy of the session's demo, ``demo_template``);
each test gets its own Chromium. Neither is the conftest's module-scoped ``live_server`` /
``browser``: these tests change nothing, and a fixture of their own keeps the module out of the
shared-module list the other browser tests need.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import time_machine

from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, DemoTemplate, LiveServer, sign_in, start_live_server

pytestmark = pytest.mark.slow

# What each language calls the controls the journeys use.
WORDS = {
    "en": {"user": "anna", "search": "Name or MRN", "show": "Show", "ward": "Ward", "matches": "match"},
    "ru": {
        "user": "dmitry",
        "search": "ФИО или номер карты",
        "show": "Показать",
        "ward": "Отделение",
        "matches": "Найден",
    },
}
BED_MANAGER = {"en": "boris", "ru": "dmitry"}  # the demo's bed manager reads English; dmitry may see the board too


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory, demo_template: DemoTemplate) -> Iterator[LiveServer]:
    """A copy of the session's demo, served at the demo's clock (the server keeps its own moved clock)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    data_dir = tmp_path_factory.mktemp("worklist-board") / "data"
    shutil.copytree(demo_template.data_dir, data_dir)
    with time_machine.travel(demo_template.ready_at, tick=True):
        server = start_live_server(data_dir)
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture
def tab() -> Iterator[Any]:
    """A fresh Chromium (no cookies) at 1024x768, per test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = chromium.new_context(viewport={"width": 1024, "height": 768}, locale="en-GB")
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        chromium.close()


def _flagged(server: LiveServer) -> list[dict[str, Any]]:
    with server.api() as api:
        return list(api.get("/api/v1/worklist", params={"limit": 500}).raise_for_status().json()["items"])


def _terms(name: str) -> list[str]:
    family, given = name.split()[:2]
    return [given, family[:-1]]


def _search(page: Any, words: dict[str, str], text: str) -> None:
    page.get_by_label(words["search"], exact=True).fill(text)
    page.get_by_role("button", name=words["show"], exact=True).click()
    page.wait_for_url("**q=*")


@pytest.mark.parametrize("language", ["en", "ru"])
def test_finding_a_patient_by_name(demo_server: LiveServer, tab: Any, artifacts: Path, language: str) -> None:
    words = WORDS[language]
    everyone = _flagged(demo_server)

    # A patient with a case whose first name and part of the family name find them alone.
    def found_by(terms: list[str]) -> list[dict[str, Any]]:
        return [i for i in everyone if i["name"] and all(t in i["name"].casefold() for t in terms)]

    named = [i for i in everyone if i["name"] and i["case"] and len(i["name"].split()) >= 2]
    target = next(i for i in named if len(found_by([w.casefold() for w in _terms(i["name"])])) == 1)
    family, given = target["name"].split()[:2]

    sign_in(tab, demo_server, words["user"])
    tab.goto(f"{demo_server.base_url}/worklist?view=all")
    _search(tab, words, f"{given.lower()} {family[:-1].upper()}")  # any order, any case, part of a word
    rows = tab.locator("table.live tbody tr")
    assert rows.count() == 1, rows.all_inner_texts()
    row = rows.first
    assert target["name"] in row.inner_text() and target["mrn"] in row.inner_text()
    assert words["matches"] in tab.locator(".live-total").inner_text()
    tab.screenshot(path=str(artifacts / f"worklist-search-{language}.png"))

    _search(tab, words, target["mrn"])
    assert tab.locator("table.live tbody tr").count() == 1
    assert target["name"] in tab.locator("table.live tbody tr").first.inner_text()
    tab.locator("table.live tbody tr").first.get_by_role("link").first.click()
    tab.wait_for_load_state()
    assert urlparse(tab.url).path == f"/cases/{target['case']['id']}"
    tab.screenshot(path=str(artifacts / f"case-from-search-{language}.png"))


def _ward_totals(page: Any) -> dict[str, int]:
    """Ward -> "in a bed" of the board's totals-per-ward table (the "All" row under the key "")."""
    found = {}
    for row in page.locator("table.by-ward tbody tr").all():
        ward = row.locator("th").inner_text().strip()
        found["" if "total" in (row.get_attribute("class") or "") else ward] = int(row.locator("td").first.inner_text())
    return found


@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_bed_boards_ward_totals(demo_server: LiveServer, tab: Any, artifacts: Path, language: str) -> None:
    words = WORDS[language]
    sign_in(tab, demo_server, BED_MANAGER[language])
    tab.goto(f"{demo_server.base_url}/board")
    totals = _ward_totals(tab)
    everyone = totals.pop("")
    wards_of_rows = Counter(
        text.split("\n")[0].strip() for text in tab.locator("table.board tbody tr td:first-child").all_inner_texts()
    )
    assert totals == dict(wards_of_rows) and everyone == sum(totals.values())  # every patient in a bed is a row
    with demo_server.api() as api:
        board = api.get("/api/v1/board").raise_for_status().json()
    assert {g["key"]: g["in_bed"] for g in board["by_ward"]} == totals
    assert everyone >= 40  # the demo's current inpatients, flagged or not (45 less the one who died)
    tab.screenshot(path=str(artifacts / f"board-{language}.png"))
    tab.locator("#totals-heading").scroll_into_view_if_needed()
    tab.screenshot(path=str(artifacts / f"board-totals-{language}.png"))

    ward = max(totals, key=lambda w: totals[w])
    tab.get_by_label(words["ward"], exact=True).select_option(ward)
    tab.get_by_role("button", name=words["show"], exact=True).click()
    tab.wait_for_url("**/board?ward=*")
    assert _ward_totals(tab) == {ward: totals[ward], "": totals[ward]}
    shown = tab.locator("table.board tbody tr td:first-child").all_inner_texts()
    assert len(shown) == totals[ward] and all(text.startswith(ward) for text in shown)
    tab.screenshot(path=str(artifacts / f"board-ward-{language}.png"))
