"""Journeys in Debian's Chromium on the demo hospital, in English and in Russian: an IT admin adds a
source (a folder of FHIR Bundles on the server's host), checks the connection before saving, saves
it, and presses "Sync now"; the card shows the pass running, then its result. And every page fits a
phone's width (375 px): the worklist's screenshot at that width is kept as a test artifact.

Screenshots go under the run's pytest folder (``artifacts/``), never into the repository. The demo is
served once for this module (a copy of the session's demo); each test gets its own Chromium.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine

from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.users.roles import Role
from discharge_bridge.users.service import add_user
from tests.support.passwords import production_hashing
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, DemoTemplate, LiveServer, sign_in, start_live_server

pytestmark = pytest.mark.slow
SCENARIOS = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "scenarios"
BUNDLES = ("elderly_lives_alone", "dementia_no_contacts", "homeless")

# What each language calls what the journey uses.
WORDS = {
    "en": {
        "user": "irina",
        "add": "Add a source",
        "name": "Source name",
        "hospital": "Hospital name",
        "mode": "Mode",
        "files": "Files",
        "where": "Base URL or folder",
        "zone": "Time zone",
        "check": "Check connection",
        "save": "Save",
        "sync": "Sync now",
        "not_a_server": "not a FHIR server",
        "added": "Source {name} added.",
        "fetched": r"(\d+) fetched, (\d+) new",
    },
    "ru": {
        "user": "ilya",
        "add": "Добавить источник",
        "name": "Имя источника",
        "hospital": "Название больницы",
        "mode": "Режим",
        "files": "Файлы",
        "where": "Базовый URL или папка",
        "zone": "Часовой пояс",
        "check": "Проверить подключение",
        "save": "Сохранить",
        "sync": "Синхронизировать сейчас",
        "not_a_server": "а не с сервера FHIR",  # noqa: RUF001
        "added": "Источник {name} добавлен.",
        "fetched": r"получено (\d+), новых (\d+)",
    },
}


@pytest.fixture(scope="session")
def it_server(tmp_path_factory: pytest.TempPathFactory, demo_template: DemoTemplate) -> Iterator[LiveServer]:
    """A copy of the session's demo with a Russian-speaking IT admin, served at the demo's clock."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    data_dir = tmp_path_factory.mktemp("it-journeys") / "data"
    shutil.copytree(demo_template.data_dir, data_dir)
    with time_machine.travel(demo_template.ready_at, tick=True):
        server = start_live_server(data_dir)
        with production_hashing(), session_scope(get_engine(Settings(data_dir=data_dir))) as session:
            add_user(
                session,
                username="ilya",
                display_name="Илья Смирнов",
                role=Role.it_admin,
                sources=["demo"],
                password=server.password,
                locale="ru",
            )
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


def _chromium(width: int, height: int) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = chromium.new_context(viewport={"width": width, "height": height}, locale="en-GB")
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        context.close()
        chromium.close()


@pytest.fixture
def tab() -> Iterator[Any]:
    """A fresh Chromium at a ward PC's 1024x768."""
    yield from _chromium(1024, 768)


@pytest.fixture
def phone() -> Iterator[Any]:
    """A fresh Chromium at a phone's width."""
    yield from _chromium(375, 812)


def _export(tmp_path: Path) -> Path:
    """A folder of FHIR Bundles, as a hospital might hand over: three admissions."""
    folder = tmp_path / "export"
    folder.mkdir()
    for name in BUNDLES:
        shutil.copy(SCENARIOS / name / "bundle.json", folder / f"{name}.json")
    return folder


@pytest.mark.parametrize("language", ["en", "ru"])
def test_an_it_admin_adds_a_source_and_presses_sync_now(
    it_server: LiveServer, tab: Any, artifacts: Path, tmp_path: Path, language: str
) -> None:
    words = WORDS[language]
    name = f"north-{language}"
    folder = _export(tmp_path)
    sign_in(tab, it_server, words["user"])
    assert tab.url.endswith("/it")
    tab.get_by_role("link", name=words["add"]).click()
    tab.wait_for_url("**/it/add-source")
    tab.get_by_label(words["name"], exact=True).fill(name)
    tab.get_by_label(words["hospital"], exact=True).fill(f"North Hospital ({language})")
    tab.get_by_label(words["mode"], exact=True).select_option(label=words["files"])
    tab.get_by_label(words["where"], exact=True).fill(str(folder))
    tab.get_by_label(words["zone"], exact=True).fill("Europe/Moscow")

    # The check runs against what was typed, and the form comes back as it was.
    tab.get_by_role("button", name=words["check"], exact=True).click()
    report = tab.locator("#form-check")
    report.wait_for()
    assert words["not_a_server"] in report.inner_text() and "3" in report.inner_text()
    assert tab.get_by_label(words["name"], exact=True).input_value() == name
    assert tab.get_by_label(words["where"], exact=True).input_value() == str(folder)
    tab.screenshot(path=str(artifacts / f"it-add-source-checked-{language}.png"), full_page=True)

    tab.get_by_role("button", name=words["save"], exact=True).click()
    card = tab.locator(f"#source-{name}")
    card.wait_for()
    assert words["added"].format(name=name) in card.inner_text()
    assert card.locator(".check-items").is_visible()  # checked again, saved

    card.get_by_role("button", name=words["sync"], exact=True).click()
    state = tab.locator(f"#source-{name} [data-sync-state]")
    state.first.wait_for()
    assert state.first.get_attribute("data-sync-state") in ("queued", "running", "ok")
    tab.locator(f"#source-{name} [data-sync-state=ok]").wait_for(timeout=60_000)  # the card asks until it ends
    result = tab.locator(f"#source-{name} [data-sync-state=ok]").inner_text()
    found = re.search(words["fetched"], result)
    assert found is not None and int(found.group(1)) > 0 and int(found.group(2)) > 0, result
    tab.locator(f"#source-{name}").scroll_into_view_if_needed()
    tab.screenshot(path=str(artifacts / f"it-sync-now-{language}.png"))
    with it_server.api() as api:
        source = api.get(f"/api/v1/sources/{name}").raise_for_status().json()
    assert source["last_run"]["status"] == "ok" and source["last_run"]["created"] == int(found.group(2))


def _fits(page: Any) -> tuple[int, list[str]]:
    """The page's width, and what sticks out past the screen outside a scrolling table."""
    width = page.evaluate("document.documentElement.scrollWidth")
    outside = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap'))
            .slice(0, 5).map(e => e.tagName + '.' + e.className)"""
    )
    return int(width), list(outside)


def test_the_pages_fit_a_phone(it_server: LiveServer, phone: Any, artifacts: Path) -> None:
    sign_in(phone, it_server, "anna")
    phone.goto(f"{it_server.base_url}/worklist")
    phone.screenshot(path=str(artifacts / "worklist-phone.png"), full_page=True)
    nav = phone.locator("header nav").bounding_box()
    assert nav is not None and nav["x"] >= 0 and nav["x"] + nav["width"] <= 375  # the navigation wraps
    first_case = phone.locator("a[href^='/cases/']").first.get_attribute("href")
    for path in ("/worklist", "/board", first_case):
        phone.goto(f"{it_server.base_url}{path}")
        assert _fits(phone) == (375, []), path
    sign_in(phone, it_server, "irina")
    for path in ("/it", "/it/add-source", "/it/sources/demo/edit"):
        phone.goto(f"{it_server.base_url}{path}")
        assert _fits(phone) == (375, []), path
    phone.goto(f"{it_server.base_url}/it")
    phone.screenshot(path=str(artifacts / "it-phone.png"), full_page=True)
    letters = phone.locator("#source-demo .table-wrap").first
    assert letters.evaluate("e => e.scrollWidth > e.clientWidth")  # the wide table scrolls in its own box
