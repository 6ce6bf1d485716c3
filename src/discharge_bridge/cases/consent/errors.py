"""What can go wrong with consent."""

from __future__ import annotations

from discharge_bridge.cases.errors import CoordinationError, NotFound


class ConsentNotFound(NotFound):
    def __init__(self, consent_id: int) -> None:
        super().__init__("consent", consent_id)


class ConsentAlreadyRevoked(CoordinationError):
    status_code = 409

    def __init__(self, consent_id: int | None) -> None:
        super().__init__(f"consent {consent_id} is already revoked")
