"""Browser tests: the real service in its own process on the demo data, driven by Debian's Chromium.

``live_server`` (module scope) copies the demo hospital and its users, loaded once per session
(``demo_template``), into a fresh data folder, starts ``uvicorn`` on a free 127.0.0.1 port and
stops it by PID. ``browser`` launches ``/usr/bin/chromium`` through Playwright (no browser
download). Tests using either are ``slow``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import time_machine

from tests.support.clock import child_env
from tests.support.passwords import production_hashing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = Path(__file__).resolve().parents[2]

BROWSER_FIXTURES = frozenset({"live_server", "browser", "page"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts the live server or the browser is slow (a conftest ``pytestmark`` marks nothing)."""
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@dataclass
class LiveServer:
    base_url: str
    data_dir: Path
    password: str  # every demo user's
    api_token: str  # the service token (admin)
    process: subprocess.Popen[bytes]

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.api_token}"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The browser tests' morning: 09:00 in Moscow (the demo hospital's zone), two hours after the
# morning list, the day after the demo's admissions end (fhir_fixtures/make_demo_hospital.py
# ANCHOR), so stays have their lengths. Pinned, so what is "due today" does not depend on when the
# suite runs.
LIVE_CLOCK = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def prepare_demo_data(data_dir: Path) -> None:
    """Load the demo into ``data_dir`` (in this process) and close the database, so the folder can be copied."""
    from discharge_bridge.config import Settings
    from discharge_bridge.db import get_engine
    from discharge_bridge.demo import prepare_demo

    with production_hashing():  # the server checks the demo users' passwords as it would in production
        settings, _ = prepare_demo(Settings(data_dir=data_dir), activity=False)  # the tests do the work
    get_engine(settings).dispose()  # the last connection closed checkpoints the WAL into the file


def start_live_server(data_dir: Path) -> LiveServer:
    """Serve the demo prepared in ``data_dir`` (``prepare_demo_data``) from a child process.

    The server shares this process's clock (``child_env``): call it inside ``time_machine.travel``.
    """
    from discharge_bridge.config import Settings
    from discharge_bridge.demo import demo_password, demo_token

    settings = Settings(data_dir=data_dir)
    token = demo_token(settings)  # as prepare_demo gives it: the configured one, else the generated one
    port = _free_port()
    env = {
        **child_env(),
        "DISCHARGE_BRIDGE_DATA_DIR": str(data_dir),
        "DISCHARGE_BRIDGE_API_TOKEN": token,
        "PYTHONPATH": str(ROOT / "src"),
    }
    env.pop("DISCHARGE_BRIDGE_DATABASE_URL", None)
    code = (  # as `serve` runs it: uvicorn's access log (raw paths) off
        "import uvicorn; from discharge_bridge.app import create_app; "
        "from discharge_bridge.logs import uvicorn_log_config; "
        f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_level='warning', "
        "log_config=uvicorn_log_config(), access_log=False)"
    )
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # generous: the machine may be busy with other tests
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {(data_dir / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("the server did not answer /healthz within 60 s")
    return LiveServer(base, data_dir, demo_password(settings), token, process)


@dataclass
class DemoTemplate:
    data_dir: Path
    ready_at: datetime  # the clock when it was prepared: a copy is served from there on


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> DemoTemplate:
    """The demo loaded once per session at ``LIVE_CLOCK`` (ticking); each module serves a copy of it."""
    from discharge_bridge.clock import utcnow

    with time_machine.travel(LIVE_CLOCK, tick=True):
        data_dir = tmp_path_factory.mktemp("live-template") / "data"
        prepare_demo_data(data_dir)
        return DemoTemplate(data_dir, utcnow())


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, demo_template: DemoTemplate) -> Iterator[LiveServer]:
    """A fresh copy of the demo served from where its preparation left the clock (``LIVE_CLOCK`` plus the
    time it took, ticking on), in the server and in this test process alike: as if loaded just now.
    Users the tests add to it get their passwords hashed as in production, as the demo's were."""
    data_dir = tmp_path_factory.mktemp("live") / "data"
    shutil.copytree(demo_template.data_dir, data_dir)
    with time_machine.travel(demo_template.ready_at, tick=True), production_hashing():
        server = start_live_server(data_dir)
        yield server
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()


@pytest.fixture(scope="module")  # not longer: Playwright's sync API runs an event loop on this thread
def browser() -> Iterator[object]:
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing on CI: .ci/run must apt-get install chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh browser context (no cookies) at a tablet's size, per test."""
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-GB")  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def sign_in(page: object, server: LiveServer, username: str, password: str | None = None) -> None:
    """Sign in through the form, as a person would."""
    page.goto(f"{server.base_url}/login")  # type: ignore[attr-defined]
    page.get_by_label("User name").fill(username)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(password or server.password)  # type: ignore[attr-defined]
    # Until the next page's load event: its deferred scripts (htmx, pages.js) are running by then.
    with page.expect_navigation(wait_until="load"):  # type: ignore[attr-defined]
        page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
