"""The coordinator's worklist page: this morning's list of each hospital first, then the live worklist.

The morning list is the snapshot the scheduler made at the start of the day (new flags since the
previous list, tasks due today or overdue); each due task also shows its status now, so work done
since the morning is not chased twice. The live worklist below it is searched by name or MRN,
filtered (ward, reason, priority, coordinator, case status, tasks due), sorted and paged by keyset;
each filter's choices carry their counts. Patients appear by name, age and sex, MRN, ward and bed,
admission and length of stay; every patient the page shows is one line of the access log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from discharge_bridge.cases.service import open_case_by_hand
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SessionDep, SettingsDep, log_view
from discharge_bridge.risk import RuleSetError, loading
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_common import CasePageRoute, Coordinator, Form, Reader, text
from discharge_bridge.ui.case_labels import N_, concept_label, label, task_text, worklist_reasons
from discharge_bridge.ui.identity_labels import person_line, stay_line
from discharge_bridge.ui.templating import language_of, render
from discharge_bridge.users.roles import Permission
from discharge_bridge.worklists.filters import CaseState, Due, InvalidFilter, Sort, WorklistQuery
from discharge_bridge.worklists.morning import shown_lists, with_people
from discharge_bridge.worklists.people import coordinator_names
from discharge_bridge.worklists.schemas import Count, WorklistCounts, WorklistPage
from discharge_bridge.worklists.service import worklist, worklist_half

PER_PAGE = 25
router = APIRouter(route_class=CasePageRoute, include_in_schema=False)
FILTERS = ("q", "ward", "rule", "priority", "coordinator", "status", "due", "sort")

STATUS = {"none": N_("No case yet")}
DUE = {"overdue": N_("Overdue tasks"), "today": N_("Tasks due today"), "week": N_("Tasks due this week")}
SORTS = {
    "priority": N_("Priority"),
    "admitted": N_("Newest admission"),
    "stay": N_("Longest stay"),
    "due": N_("Next task due"),
    "name": N_("Name"),
}
# Why a filter value was refused, next to its control.
REFUSED = {
    "q": N_("Search for at most 6 words and 100 characters: a name or an MRN."),
    "after": N_("That page link is out of date: start again from the first page."),
    "coordinator": N_("Choose a coordinator, or the unassigned view, not both."),
}
CHOOSE = N_("Choose one of the listed values.")


def Priority(value: str) -> str:
    if value not in ("high", "medium", "low"):
        raise ValueError(value)
    return value


def _query(asked: dict[str, str], view: str) -> WorklistQuery:
    """The form's values as a query; ``InvalidFilter`` names the control whose value cannot be used."""

    def one_of(name: str, kind: Callable[[str], Any]) -> Any:
        value = asked.get(name) or None
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            raise InvalidFilter(name, "not one of the choices") from None

    return WorklistQuery(
        search=asked.get("q") or None,
        ward=asked.get("ward") or None,
        rule=asked.get("rule") or None,
        priority=one_of("priority", Priority),
        coordinator=asked.get("coordinator") or None,
        unassigned=view == "unassigned",
        status=one_of("status", CaseState),
        due=one_of("due", Due),
        sort=one_of("sort", Sort) or Sort.priority,
        after=asked.get("after") or None,
    )


def _with_count(text: str, found: list[Count], value: str) -> str:
    n = next((c.count for c in found if c.value == value), 0)
    return f"{text} ({n})"


def _options(counts: WorklistCounts | None, people: dict[str, str], asked: dict[str, str]) -> dict[str, list[Any]]:
    """(value, label with its count) per filter; a chosen value the counts no longer list stays offered."""
    if counts is None:
        counts = WorklistCounts(ward=[], rule=[], priority=[], coordinator=[], status=[], due=[], unassigned=0)
    options: dict[str, list[Any]] = {
        "ward": [(c.value, f"{c.value} ({c.count})") for c in counts.ward if c.value],
        "rule": [(c.value, f"{concept_label(c.label or c.value or '')} ({c.count})") for c in counts.rule if c.value],
        "priority": [(p, _with_count(label("priority", p), counts.priority, p)) for p in ("high", "medium", "low")],
        "coordinator": [
            (c.value, f"{people.get(c.value, c.value)} ({c.count})") for c in counts.coordinator if c.value
        ],
        "status": [
            (
                s.value,
                _with_count(
                    i18n.gettext(STATUS[s.value]) if s.value in STATUS else label("case_status", s.value),
                    counts.status,
                    s.value,
                ),
            )
            for s in CaseState
        ],
        "due": [(d.value, _with_count(i18n.gettext(DUE[d.value]), counts.due, d.value)) for d in Due],
        "sort": [(s, i18n.gettext(text)) for s, text in SORTS.items()],
    }
    for name in ("ward", "rule", "coordinator"):
        chosen = asked.get(name)
        if chosen and chosen not in {v for v, _ in options[name]}:
            options[name].append((chosen, f"{chosen} (0)"))
    return options


def _url(view: str, asked: dict[str, str], **extra: str) -> str:
    pairs = [("view", view), *((k, asked[k]) for k in FILTERS if asked.get(k)), *extra.items()]
    return "/worklist?" + urlencode(pairs) + "#live-heading"  # the page opens at the list


@router.get("/worklist")
def worklist_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Reader,
    view: Annotated[Literal["mine", "all", "unassigned"] | None, Query()] = None,
    q: str | None = None,
    ward: str | None = None,
    rule: str | None = None,
    priority: str | None = None,
    coordinator: str | None = None,
    status: str | None = None,
    due: str | None = None,
    sort: str | None = None,
    after: str | None = None,
) -> Response:
    i18n.set_language(language_of(request))  # labels are made below, before render() would set it
    try:
        rules = loading.rule_set(settings.mappings_dir)
    except RuleSetError as exc:
        raise HTTPException(503, f"the rule set cannot be loaded: {exc}") from None
    now = utcnow()
    sources = {s.id: s for s in list_sources(session, source_ids=principal.scope) if s.id is not None}
    half, can_mine = worklist_half(session, principal, view)
    people = coordinator_names(session, sources)
    asked = {
        k: v.strip()
        for k, v in (
            ("q", q),
            ("ward", ward),
            ("rule", rule),
            ("priority", priority),
            ("coordinator", coordinator),
            ("status", status),
            ("due", due),
            ("sort", sort),
        )
        if v and v.strip()
    }
    mornings = shown_lists(
        session,
        sources,
        source_ids=principal.scope,
        coordinator=principal.username if half == "mine" else None,
        unassigned=half == "unassigned",
    )
    for hospital in mornings:
        hospital["flags"] = [{**f, "reasons": worklist_reasons(f.get("reasons") or [])} for f in hospital["flags"]]
    shown = with_people(session, mornings, now=now, mappings_dir=settings.mappings_dir)
    refused: dict[str, str] | None = None
    try:
        found = worklist(
            session,
            rules_version=rules.version,
            source_ids=principal.scope,
            limit=PER_PAGE,
            query=_query({**asked, "after": after or ""}, half),
            now=now,
            mappings_dir=settings.mappings_dir,
            with_counts=True,
            figures_max_age=settings.list_figures_max_age_seconds,
        )
    except InvalidFilter as exc:
        refused = {"field": exc.param, "message": i18n.gettext(REFUSED.get(exc.param, CHOOSE))}
        found = WorklistPage(total=0, items=[])
    shown += found.shown
    log_view(session, principal, "ui.worklist", shown)
    live = {
        "rows": [
            {
                "item": item,
                "timezone": sources[item.source_id].timezone,
                "reasons": worklist_reasons([r.model_dump() for r in item.reasons]),
            }
            for item in found.items
        ],
        "total": found.total,
        "total_more": found.total_more,
        "filtered": bool(set(asked) - {"sort"}) or half == "unassigned",
        "next_url": _url(half, asked, after=found.next_after) if found.next_after else None,
        "first_url": _url(half, asked) if after else None,
    }
    return render(
        request,
        "worklist.html",
        {
            "title": "Worklist",
            "view": half,
            "can_mine": can_mine,
            "unassigned": found.counts.unassigned if found.counts else None,
            "mornings": mornings,
            "live": live,
            "asked": asked,
            "refused_filter": refused,
            "options": _options(found.counts, people, asked),
            "clear_url": f"/worklist?view={half}#live-heading",
            "people": people,
            "multi_hospital": len(sources) > 1,
            "label": label,
            "task_text": task_text,
            "person_line": person_line,
            "stay_line": stay_line,
            "can_open": principal.can(Permission.coordinate),
            "now": now,
        },
        status_code=422 if refused else 200,
    )


@router.post("/worklist/open")
def open_from_worklist(session: SessionDep, principal: Coordinator, form: Form) -> RedirectResponse:
    """Open a case by hand for a flagged admission that has none; a coordinator takes it on."""
    case, _ = open_case_by_hand(
        session,
        source_name=text(form, "source"),
        encounter_fhir_id=text(form, "encounter"),
        actor=principal.username,
        principal=principal,
    )
    return RedirectResponse(f"/cases/{case.id}?done=opened", status_code=303)
