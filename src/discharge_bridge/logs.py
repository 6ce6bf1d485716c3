"""Logging: one line per event, and never a patient's name, birth date, identifier or FHIR id.

Our own log calls carry counts, source names and internal ids. What could leak comes from
elsewhere, and is closed here:

- uvicorn's access log prints the raw path and query string (``/cases?patient=...``): silenced
  (``uvicorn_log_config``); ``RequestObserver`` logs the route template instead.
- httpx logs every request URL at INFO (``Patient?_id=...``), SQLAlchemy logs statements with their
  parameters once the root level reaches INFO: both are capped at WARNING whatever the level.
- Exception messages can quote data (pydantic's ``input_value``, SQLAlchemy's ``[parameters: ...]``):
  a traceback is written as its frames and exception types, with the message only for exceptions
  that are built to be safe (the FHIR client's errors mask ids in URLs).
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

from discharge_bridge.config import Settings

HANDLER_NAME = "discharge_bridge"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HTTP_LOGGER = logging.getLogger("discharge_bridge.http")
# Libraries whose INFO / DEBUG lines carry raw URLs, SQL parameters or form fields.
CAPPED_LOGGERS = ("httpx", "httpcore", "sqlalchemy", "multipart", "python_multipart", "uvicorn.access")
# Probes and scrapes arrive every few seconds: their request lines are DEBUG, not INFO.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
# An exception class whose messages never quote data says so with ``log_message_safe = True``
# (the FHIR client's errors: status, resource type and path without the query); OSError names files.
_SAFE_MESSAGES: tuple[type[BaseException], ...] = (OSError,)


def _message_safe(exc: BaseException) -> bool:
    return isinstance(exc, _SAFE_MESSAGES) or getattr(type(exc), "log_message_safe", False) is True


class InvalidLogLevel(ValueError):
    pass


def safe_exception_text(exc: BaseException) -> str:
    """``Type: message`` for safe types, else the type alone, for ``exc`` and its causes."""
    parts = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__qualname__
        text = str(current) if _message_safe(current) else ""
        parts.append(f"{name}: {text}" if text else f"{name} (message withheld: it may quote data)")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return " <- caused by ".join(parts)


class OneLineFormatter(logging.Formatter):
    """No newlines inside an event; tracebacks as ``file:line in function`` frames, messages withheld."""

    def formatException(self, ei: Any) -> str:
        _, exc, tb = ei
        if exc is None:
            return ""
        frames = " > ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb))
        return f"[{safe_exception_text(exc)}] at {frames}" if frames else f"[{safe_exception_text(exc)}]"

    def formatStack(self, stack_info: str) -> str:
        return " | ".join(line.strip() for line in stack_info.splitlines() if line.strip())

    def format(self, record: logging.LogRecord) -> str:
        record.exc_text = None  # another handler may have cached the full traceback text on the record
        return super().format(record).replace("\r", "").replace("\n", " | ")


def parse_level(name: str) -> int:
    level = logging.getLevelName(name.strip().upper())
    if not isinstance(level, int):
        raise InvalidLogLevel(f"DISCHARGE_BRIDGE_LOG_LEVEL={name!r}: use DEBUG, INFO, WARNING or ERROR")
    return level


def configure_logging(settings: Settings) -> None:
    """One handler on the root logger (stderr), at ``settings.log_level``; idempotent."""
    level = parse_level(settings.log_level)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(OneLineFormatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    for name in CAPPED_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def uvicorn_log_config() -> dict[str, Any]:
    """``uvicorn.run(log_config=...)``: uvicorn's lines go to our root handler; its access log nowhere.

    Pair it with ``access_log=False`` (then uvicorn does not even format the access lines).
    """
    plain = {"format": FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": plain, "access": plain},  # uvicorn sets use_colors on these keys
        "handlers": {"null": {"class": "logging.NullHandler"}},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": ["null"], "propagate": False},
        },
    }


def log_request(method: str, route: str, status: int, duration_ms: float) -> None:
    """``GET /api/v1/cases/{case_id} 200 3.1ms``: the route template, never the path or the query."""
    if status >= 500:
        level = logging.WARNING
    elif route in QUIET_ROUTES:
        level = logging.DEBUG
    else:
        level = logging.INFO
    HTTP_LOGGER.log(level, "%s %s %d %.1fms", method, route, status, duration_ms)
