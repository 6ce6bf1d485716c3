"""The service's one wall clock.

Everything that needs "now" (services, jobs, the scheduler, pages) calls ``utcnow()`` or takes a
``now`` argument that defaults to it; nothing else reads the wall clock. Tests fix time with
``time_machine.travel`` in their own process, and move the clock of every process they start
(the web server, the scheduler, the EHR simulator) through one setting:

    DISCHARGE_BRIDGE_CLOCK_START=2026-03-08T06:30:00Z   # the wall clock starts here and ticks on

Each process calls ``start_from_environment()`` at start (the CLI and ``create_app`` do). It uses
``time-machine`` (a test dependency), which moves ``datetime.now`` / ``time.time`` but leaves
``time.monotonic`` real, so timeouts, sleeps and threading waits keep working; libfaketime does
not (it moves the monotonic clock too and breaks Python's waits).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

CLOCK_START_ENV = "DISCHARGE_BRIDGE_CLOCK_START"
# The real Unix time at which CLOCK_START was "now": a child process started by a moved parent
# adds the real seconds its own start-up took, so it is not behind its parent.
CLOCK_SET_AT_ENV = "DISCHARGE_BRIDGE_CLOCK_SET_AT"

_travel: Any = None  # the running time_machine travel, when the setting moved this process's clock
_moved: tuple[datetime, float] | None = None  # (the instant it was moved to, the real Unix time then)


def utcnow() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)


def parse_clock_start(text: str) -> datetime:
    """An ISO 8601 instant with a zone (``Z`` accepted); a naive one would be ambiguous, so refused."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        raise ValueError(f"{CLOCK_START_ENV} needs a time zone, e.g. 2026-03-08T06:30:00Z (got {text!r})")
    return value.astimezone(UTC)


def start_from_environment() -> datetime | None:
    """Move this process's wall clock to ``DISCHARGE_BRIDGE_CLOCK_START`` (ticking on) if it is set.

    Idempotent: a process that already moved its clock keeps it. Returns the start instant, or None
    when the setting is absent (production).
    """
    global _travel, _moved
    text = os.environ.get(CLOCK_START_ENV)
    if not text:
        return None
    start = parse_clock_start(text)
    if _travel is not None:
        return start
    try:
        import time_machine  # first: its import takes a while, and the clock must not lag by it
    except ImportError as exc:  # pragma: no cover - production installs do not carry it
        raise RuntimeError(
            f"{CLOCK_START_ENV} is set but time-machine is not installed (pip install -e '.[test]')"
        ) from exc
    set_at = os.environ.get(CLOCK_SET_AT_ENV)
    real = time.time()  # not moved yet
    if set_at:
        start += timedelta(seconds=max(0.0, real - float(set_at)))
    _moved = (start, real)
    _travel = time_machine.travel(start, tick=True)
    _travel.start()
    utcnow()  # time-machine starts ticking at the first read, not at start(): read now
    return start


def process_clock() -> tuple[datetime, float] | None:
    """Where ``start_from_environment`` moved this process's clock: (instant, real Unix time then)."""
    return _moved
