"""Shared by the list tests: kept figures never outlive a test's database."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import pytest

from discharge_bridge.worklists import figures


@pytest.fixture(autouse=True)
def _figures_settled(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no kept answers (a recycled test database may have the same URL) and
    ends once the background refreshes it started have: the test's database (set up first, so torn
    down after) is still there for them."""
    if "engine" in request.fixturenames:
        request.getfixturevalue("engine")
    monkeypatch.setattr(figures, "_kept", OrderedDict())
    yield
    figures.settle()
