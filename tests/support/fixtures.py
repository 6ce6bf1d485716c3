"""pytest fixtures for the SEKMET FHIR simulator (loaded via ``pytest_plugins = ["tests.support.fixtures"]``).

* ``sekmet_factory`` (function): ``start(auth=..., validation=..., subscription_retries=..., ...)`` returns a started
  :class:`SekmetServer` in its own temporary directory; every server it started is stopped after the test (tests
  may stop theirs earlier), so none keeps delivering notifications or heartbeats while later tests run.
* ``sekmet`` (function): a fresh, empty server (auth none, validation off) per test, stopped after the test.
  Start-up takes about 1.5 s on the 2-core CI machine, so the next test's server is spawned as soon as one is handed
  out (a spare, booting while the test runs): each test still gets a server nobody used before.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.sekmet import SekmetServer

SekmetFactory = Callable[..., SekmetServer]


class _Spares:
    """At most one plain server spawned ahead of the test that will take it, watched until it answers
    (so its ``start_seconds`` is its real start-up time, not how long it waited)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._spare: tuple[SekmetServer, threading.Thread] | None = None

    def _spawn(self) -> tuple[SekmetServer, threading.Thread]:
        server = SekmetServer(self._tmp.mktemp("sekmet"))
        server.spawn()

        def watch() -> None:
            with contextlib.suppress(Exception):  # take() waits again and raises what went wrong
                server.wait_ready()

        watcher = threading.Thread(target=watch, name=f"sekmet-spare-{server.port}", daemon=True)
        watcher.start()
        return server, watcher

    def take(self) -> SekmetServer:
        spare, self._spare = self._spare, None
        server, watcher = spare or self._spawn()
        watcher.join()
        try:
            server.wait_ready()  # a no-op once ready; starts it again if it died or lost its port
        except BaseException:
            server.stop()
            raise
        self._spare = self._spawn()  # boots while the test runs
        return server

    def stop(self) -> None:
        if self._spare is not None:
            server, watcher = self._spare
            watcher.join()
            server.stop()
            self._spare = None


@pytest.fixture
def sekmet_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SekmetFactory]:
    started: list[SekmetServer] = []

    def start(**kwargs: Any) -> SekmetServer:
        server = SekmetServer(tmp_path_factory.mktemp("sekmet"), **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def _sekmet_spares(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Spares]:
    spares = _Spares(tmp_path_factory)
    yield spares
    spares.stop()


@pytest.fixture
def sekmet(_sekmet_spares: _Spares) -> Iterator[SekmetServer]:
    server = _sekmet_spares.take()
    yield server
    server.stop()
