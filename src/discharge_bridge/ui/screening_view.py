"""The context of the "Screening" section (templates/case/screening.html): the case's BRASS and ISAR
screenings, each item with its answer, whether the data suggested it (and from what), and the
published total and band once completed. Question and answer texts are the Questionnaire's, in
the reader's language (ui/locale/*/screening.po)."""

from __future__ import annotations

from typing import Any

from discharge_bridge.cases.models import Case
from discharge_bridge.cases.screening.service import list_screenings
from discharge_bridge.config import Settings
from discharge_bridge.deps import SessionDep
from discharge_bridge.risk.screening import TOOLS, definition, total, unanswered
from discharge_bridge.ui import i18n
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission

BANDS = {
    "low": i18n.N_("low risk"),
    "needs_planning": i18n.N_("needs discharge planning"),
    "not_home": i18n.N_("likely not going home"),
    "at_risk": i18n.N_("at risk"),
    "not_at_risk": i18n.N_("not at risk"),
}
STATUSES = {
    "in-progress": i18n.N_("in progress"),
    "completed": i18n.N_("completed"),
    "amended": i18n.N_("amended"),
}
TITLES = {"brass": "BRASS", "isar": "ISAR"}


def _questions(items: list[dict[str, Any]], answers: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if item.get("type") == "group":
            out.append({"group": True, "text": i18n.gettext(item.get("text", "")), "depth": depth})
            out += _questions(item.get("item", []), answers, depth + 1)
            continue
        answer = answers.get(item["linkId"]) or {}
        options = [
            (o["valueCoding"]["code"], i18n.gettext(o["valueCoding"].get("display", o["valueCoding"]["code"])))
            for o in item.get("answerOption", [])
        ]
        out.append(
            {
                "group": False,
                "link": item["linkId"],
                "prefix": item.get("prefix", ""),
                "text": i18n.gettext(item.get("text", "")),
                "options": options,
                "value": answer.get("value"),
                "prefilled": answer.get("source") == "prefilled",
                "evidence": answer.get("evidence"),
                "depth": depth,
            }
        )
    return out


def screening_section(session: SessionDep, settings: Settings, case: Case, principal: Principal) -> dict[str, Any]:
    assert case.id is not None
    rows = []
    busy = set()
    for response in list_screenings(session, case.id):
        defn = definition(response.tool, settings.mappings_dir)
        if response.status == "in-progress":
            busy.add(str(response.tool))
        rows.append(
            {
                "id": response.id,
                "tool": TITLES.get(str(response.tool), str(response.tool)),
                "status": i18n.gettext(STATUSES.get(str(response.status), str(response.status))),
                "open": response.status == "in-progress",
                "total": response.total,
                "floor": total(defn, response.answers),
                "maximum": defn.maximum,
                "band": i18n.gettext(BANDS[response.band]) if response.band in BANDS else None,
                "missing": len(unanswered(defn, response.answers)),
                "questions": _questions(defn.resource.get("item", []), response.answers),
                "version": response.version,
                "by": response.completed_by or response.created_by,
                "at": response.completed_at or response.created_at,
            }
        )
    can = case.status == "open" and principal.can(Permission.coordinate)
    return {
        "case_id": case.id,
        "rows": rows,
        "can_edit": can,
        "startable": [(t, TITLES[t]) for t in TOOLS if t not in busy] if can else [],
    }
