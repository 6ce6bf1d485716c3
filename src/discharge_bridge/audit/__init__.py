"""The audit trail of administration: who changed users, roles, tokens, sources, mappings and rules,
and every sign-in lock, for the security officer.

Every admin action calls ``record_admin_action`` in the transaction that makes the change, so a
change that rolls back leaves no entry and an entry never describes a change that did not happen.
Details hold names and values, never a secret (a password, a token, a key): keys that look like
one are replaced by ``"[redacted]"``.
"""

from discharge_bridge.audit.models import AdminAction, AdminAuditEntry
from discharge_bridge.audit.service import (
    AuditQuery,
    Target,
    iter_audit,
    record_admin_action,
    search_audit,
    write_csv,
)

__all__ = [
    "AdminAction",
    "AdminAuditEntry",
    "AuditQuery",
    "Target",
    "iter_audit",
    "record_admin_action",
    "search_audit",
    "write_csv",
]
