"""Roles and what each may do. One table, read by the API, the pages and the route sweep test."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    coordinator = "coordinator"  # works the cases of their hospitals
    bed_manager = "bed_manager"  # watches pending discharges; records delay barriers
    it_admin = "it_admin"  # connects the EHR: sources, sync status, dead letters, metrics
    admin = "admin"  # everything, every hospital
    psychologist = "psychologist"  # the cases of their hospitals referred to a psychologist
    receiver = "receiver"  # a receiving organisation's worker: the referral portal, bound to one organisation


class Permission(StrEnum):
    read_cases = "read_cases"  # worklist, cases and their parts, timeline
    coordinate = "coordinate"  # open / change cases, assessment, tasks, handoffs
    edit_barriers = "edit_barriers"  # delay barriers
    view_board = "view_board"  # the bed board and its CSV
    manage_sources = "manage_sources"  # sources, dead letters, conformance, connection check, metrics
    manage_users = "manage_users"
    audit_access = "audit_access"  # search and export the access log (who viewed which patient)
    manage_directory = "manage_directory"  # edit, import and export the service directory
    read_directory = "read_directory"  # see the directory and the services suggested for a case
    refer = "refer"  # record consent, send and follow referrals
    record_services = "record_services"  # record services delivered on a case
    psychology = "psychology"  # the cases referred to a psychologist (and only those)
    receive_referrals = "receive_referrals"  # the portal: referrals addressed to one's organisation
    view_figures = "view_figures"  # the city's figures and the daily situation report


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.coordinator: frozenset(
        {
            Permission.read_cases,
            Permission.coordinate,
            Permission.edit_barriers,
            Permission.view_board,
            Permission.read_directory,
            Permission.refer,
            Permission.record_services,
            Permission.view_figures,
        }
    ),
    Role.bed_manager: frozenset(
        {Permission.read_cases, Permission.edit_barriers, Permission.view_board, Permission.view_figures}
    ),
    Role.it_admin: frozenset({Permission.manage_sources}),
    # Admins manage; they do not act as a receiver (the portal belongs to an organisation's people).
    Role.admin: frozenset(Permission) - {Permission.receive_referrals, Permission.psychology},
    Role.psychologist: frozenset({Permission.psychology, Permission.record_services}),
    Role.receiver: frozenset({Permission.receive_referrals}),
}


def home_page(role: Role) -> str:
    """Where a user lands after signing in."""
    return {
        Role.coordinator: "/worklist",
        Role.bed_manager: "/board",
        Role.it_admin: "/it",
        Role.admin: "/worklist",
        Role.psychologist: "/psychology",
        Role.receiver: "/portal",
    }[role]
