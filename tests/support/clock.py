"""The tests' side of the one clock (src/discharge_bridge/clock.py).

A test that depends on the date or the time of day fixes it with ``time_machine.travel``. A process
the tests start (web server, scheduler, CLI, EHR simulator) gets the test's clock through
``DISCHARGE_BRIDGE_CLOCK_START``: ``child_env`` sets it to the test process's *current* instant, so
a child started later in a ticking run is not behind its parent, and removes it when the test
process runs on the real clock.

CI runs the date-touching tests again with the whole run moved (``.ci/run``, ``CLOCK_INSTANTS``):
conftest's ``pytest_configure`` starts the moved clock in the test process itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import timedelta

from time_machine import escape_hatch

from discharge_bridge.clock import CLOCK_SET_AT_ENV, CLOCK_START_ENV, process_clock, utcnow


def child_env(env: Mapping[str, str] | None = None, *, shared: bool = False) -> dict[str, str]:
    """``env`` (default: this process's) with the clock setting a child needs to share our time.

    ``shared``: the child outlives the test that starts it (a session's EHR simulator): it takes the
    run's clock (moved by CI, or real), never the instant a test happened to freeze.
    """
    result = dict(os.environ if env is None else env)
    result.pop(CLOCK_START_ENV, None)
    result.pop(CLOCK_SET_AT_ENV, None)
    travelling = escape_hatch.is_travelling()
    real = escape_hatch.time.time() if travelling else time.time()  # the real clock either way
    if shared:
        moved = process_clock()
        if moved is not None:
            instant, at = moved
            result[CLOCK_START_ENV] = (instant + timedelta(seconds=real - at)).isoformat()
            result[CLOCK_SET_AT_ENV] = repr(real)
    elif travelling:
        result[CLOCK_START_ENV] = utcnow().isoformat()
        result[CLOCK_SET_AT_ENV] = repr(real)
    return result
