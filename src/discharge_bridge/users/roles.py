"""Roles and what each may do. One table, read by the API, the pages and the route sweep test."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    coordinator = "coordinator"  # works the cases of their hospitals
    bed_manager = "bed_manager"  # watches pending discharges; records delay barriers
    it_admin = "it_admin"  # connects the EHR: sources, sync status, dead letters, metrics
    admin = "admin"  # everything, every hospital


class Permission(StrEnum):
    read_cases = "read_cases"  # worklist, cases and their parts, timeline
    coordinate = "coordinate"  # open / change cases, assessment, tasks, handoffs
    edit_barriers = "edit_barriers"  # delay barriers
    view_board = "view_board"  # the bed board and its CSV
    manage_sources = "manage_sources"  # sources, dead letters, conformance, connection check, metrics
    manage_users = "manage_users"
    audit_access = "audit_access"  # search and export the access log (who viewed which patient)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.coordinator: frozenset(
        {Permission.read_cases, Permission.coordinate, Permission.edit_barriers, Permission.view_board}
    ),
    Role.bed_manager: frozenset({Permission.read_cases, Permission.edit_barriers, Permission.view_board}),
    Role.it_admin: frozenset({Permission.manage_sources}),
    Role.admin: frozenset(Permission),
}


def home_page(role: Role) -> str:
    """Where a user lands after signing in."""
    return {
        Role.coordinator: "/worklist",
        Role.bed_manager: "/board",
        Role.it_admin: "/it",
        Role.admin: "/worklist",
    }[role]
