"""pytest fixtures for the SEKMET FHIR simulator (loaded via ``pytest_plugins = ["tests.support.fixtures"]``).

* ``sekmet_factory`` (session): ``start(auth=..., validation=..., subscription_retries=..., ...)`` returns a started
  :class:`SekmetServer` in its own temporary directory; every server it started is stopped at session end (tests
  may stop theirs earlier).
* ``sekmet`` (function): a fresh, empty server (auth none, validation off) per test, stopped after the test.
  Start-up takes about 1.5 s on the 2-core CI machine, so a fresh server per test is affordable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.sekmet import SekmetServer

SekmetFactory = Callable[..., SekmetServer]


@pytest.fixture(scope="session")
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


@pytest.fixture
def sekmet(sekmet_factory: SekmetFactory) -> Iterator[SekmetServer]:
    server = sekmet_factory()
    yield server
    server.stop()
