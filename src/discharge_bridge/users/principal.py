"""Who is asking: the signed-in user, an API token's user, or the deployment's service token."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from discharge_bridge.users.roles import ROLE_PERMISSIONS, Permission, Role


class Via(StrEnum):
    session = "session"  # a browser cookie: unsafe requests must carry the session's CSRF token
    token = "token"  # noqa: S105 (a user's API token; a kind, not a secret)
    service = "service"  # DISCHARGE_BRIDGE_API_TOKEN: admin scope, for automation and bootstrap


@dataclass(frozen=True)
class Principal:
    username: str
    display_name: str
    role: Role
    # The sources (hospitals) visible: None = every one (admins and the service token).
    source_ids: tuple[int, ...] | None
    via: Via
    locale: str = "en"
    user_id: int | None = None
    csrf_token: str | None = None
    organisation_id: int | None = None  # receivers: the organisation whose referrals they see

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def scope(self) -> list[int] | None:
        """The repository layer's ``source_ids`` argument."""
        return None if self.source_ids is None else list(self.source_ids)

    def sees(self, source_id: int | None) -> bool:
        return self.source_ids is None or source_id in self.source_ids
