"""The context of the "Services delivered" section (templates/case/services_delivered.html), shown on
the case page and on the psychologist's case page; the forms post to ui/services_delivered.py and
ui/psychology.py. The kinds offered are those of the catalogue the reader's role may record."""

from __future__ import annotations

from typing import Any

from discharge_bridge.cases.delivered.catalogue import catalogue
from discharge_bridge.cases.delivered.repository import services_of_case
from discharge_bridge.cases.models import Case
from discharge_bridge.config import Settings
from discharge_bridge.deps import SessionDep
from discharge_bridge.ui import i18n
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission, Role


def delivered_section(
    session: SessionDep, settings: Settings, case: Case, principal: Principal, timezone: str, *, base: str | None = None
) -> dict[str, Any]:
    """The section's context: the rows (struck ones marked), the kinds the reader may record, where the forms post."""
    assert case.id is not None
    language = i18n.current_language()
    entries = catalogue(settings.mappings_dir)
    labels = {e.code: e.label(language) for e in entries}
    rows = [
        {
            "id": r.id,
            "kind": labels.get(r.kind, r.kind),
            "at": r.delivered_at,
            "by": r.delivered_by,
            "note": r.note,
            "struck": r.cancelled_at is not None,
        }
        for r in services_of_case(session, case.id)
    ]
    can_record = principal.can(Permission.record_services)
    return {
        "case_id": case.id,
        "rows": rows,
        "counted": sum(1 for r in rows if not r["struck"]),
        "kinds": [(e.code, e.label(language)) for e in entries if e.may_record(Role(principal.role))],
        "can_record": can_record,
        "base": base or f"/cases/{case.id}/services",
        "timezone": timezone,
    }
