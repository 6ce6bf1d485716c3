"""What can go wrong with a referral."""

from __future__ import annotations

from discharge_bridge.cases.errors import CoordinationError, InvalidTransition, NotFound


class ReferralNotFound(NotFound):
    def __init__(self, referral_id: int) -> None:
        super().__init__("referral", referral_id)


class InvalidReferralTransition(InvalidTransition):
    """A move REFERRAL_TRANSITIONS forbids (409 naming the allowed next statuses)."""


class ConsentRequired(CoordinationError):
    """The service shares the person's data with a non-clinical organisation: a consent must cover it."""

    status_code = 409

    def __init__(self, service_name: str, organisation_name: str, category: str) -> None:
        super().__init__(
            f"a referral to {service_name} ({organisation_name}) needs the patient's consent to share their data "
            f"with this organisation or with {category} services: record a consent first",
            consent_required=True,
        )
