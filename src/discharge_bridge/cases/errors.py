"""What can go wrong in coordination, each error with the HTTP status and body the API answers.

Services raise these; the app's error handlers (``discharge_bridge.app``) turn them into responses after the
request's transaction has rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.orm.exc import StaleDataError


class CoordinationError(Exception):
    status_code = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, **self.extra}


class NotFound(CoordinationError, LookupError):
    status_code = 404

    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"{what} {key} not found")


class CaseNotFound(NotFound):
    def __init__(self, case_id: int) -> None:
        super().__init__("case", case_id)


class CaseClosed(CoordinationError):
    """Tasks, handoffs, barriers and the assessment of a closed or cancelled case are read-only."""

    status_code = 409

    def __init__(self, case_id: int | None, status: str) -> None:
        super().__init__(f"case {case_id} is {status}: reopen it first", status=status)


class InvalidTransition(CoordinationError):
    status_code = 409

    def __init__(self, what: str, current: str, target: str, allowed: Iterable[str]) -> None:
        allowed = sorted(allowed)
        where = ", ".join(allowed) if allowed else "nothing (final status)"
        super().__init__(
            f"{what} cannot go from {current} to {target}; allowed from {current}: {where}",
            current=current,
            allowed=allowed,
        )


class StaleVersion(CoordinationError):
    """The client edited an older version than the one stored: nothing was written."""

    status_code = 409

    def __init__(self, what: str, expected: int, current: int | None) -> None:
        super().__init__(
            f"{what} is stale: you edited version {expected} but it is now version {current}; reload and retry",
            current_version=current,
        )


class VersionRequired(CoordinationError):
    status_code = 428

    def __init__(self, what: str) -> None:
        super().__init__(
            f'{what} changes need the version you edited: send If-Match: "<version>" (the ETag of your GET) '
            "or a `version` field in the body"
        )


class InvalidInput(CoordinationError):
    """A value pydantic could not judge alone (it needs the stored state); 422 in FastAPI's shape."""

    status_code = 422

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc

    def body(self) -> dict[str, Any]:
        return {"detail": [{"type": "value_error", "loc": list(self.loc), "msg": self.message}]}


class ConfigError(CoordinationError):
    """A file in mappings/ is broken; the message names the file and the key."""

    status_code = 503


def changed_meanwhile(exc: BaseException) -> bool:
    """Someone else changed the row first: a stale version the check caught (StaleVersion), or two
    writers that both passed the check and the database refused the second at flush (StaleDataError)."""
    return isinstance(exc, StaleVersion | StaleDataError)


def refused(exc: BaseException) -> bool:
    """A change the coordination rules refused, or one that lost to a concurrent writer."""
    return isinstance(exc, CoordinationError) or changed_meanwhile(exc)


def check_version(what: str, current: int, expected: int | None) -> None:
    """Raise StaleVersion unless ``expected`` (None = not given) matches the stored version."""
    if expected is not None and expected != current:
        raise StaleVersion(what, expected, current)


def refuse_nulls(values: Mapping[str, Any], fields: Iterable[str]) -> None:
    """Raise InvalidInput when one of ``fields`` is given as None: it may be changed, never cleared."""
    for field in sorted(set(fields) & set(values)):
        if values[field] is None:
            raise InvalidInput(("body", field), f"{field} may not be null")


def ensure_open(case: Any) -> None:
    """Raise CaseClosed unless the case is open (its parts are read-only otherwise)."""
    if str(case.status) != "open":
        raise CaseClosed(case.id, str(case.status))
