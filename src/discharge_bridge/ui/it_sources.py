"""Adding a source and changing one, from the hospital IT page.

One form, two buttons: *Check connection* runs the connection check against what was typed,
without saving; *Save* saves it, then runs the check against the saved source and shows the IT
page with the result in its card. A refused form comes back as it was typed (422, or 409 when
someone else saved the source since the form was opened), each message next to its field, but
never with an entry that may be a secret (see ``connections.forms``).

An IT admin who sees only some hospitals is given the hospital they add: they look after it next.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from discharge_bridge.connections.check import CheckReport
from discharge_bridge.connections.forms import (
    ALGORITHMS,
    AUTH_TYPES,
    N_,
    SourceForm,
    blank_form,
    check_against,
    mapping_names,
    modes_offered,
    read_form,
    save_changes,
    save_new,
    settings_version,
    unsaved_source,
)
from discharge_bridge.connections.status import run_check
from discharge_bridge.deps import SessionDep, SettingsDep
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceError
from discharge_bridge.ui import i18n
from discharge_bridge.ui.it_common import SourceManager, answer, field_error, it_label, source_of, words
from discharge_bridge.ui.templating import PageRoute, language_of, render
from discharge_bridge.validation import Key

router = APIRouter(route_class=PageRoute, include_in_schema=False)
ADD_PATH = "/it/add-source"


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    return tuple(sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/"))))


def _page(
    request: Request,
    form: SourceForm,
    *,
    mappings: list[str],
    editing: Source | None,
    version: str | None = None,
    report: CheckReport | None = None,
    status_code: int = 200,
) -> Response:
    i18n.set_language(language_of(request))
    if editing is None:
        title, action = i18n.gettext("Add a source"), ADD_PATH
    else:
        title = i18n.gettext("Change source %(name)s") % {"name": editing.name}
        action = f"/it/sources/{editing.name}/edit"
    return render(
        request,
        "it/source_form.html",
        {
            "title": title,
            "action": action,
            "form": form,
            "values": form.values,
            "error": lambda name: field_error(form.error(name)),
            "editing": editing,
            "version": version,
            "mode_options": [(str(m), it_label("mode", m)) for m in modes_offered(editing)],
            "auth_options": [(kind, it_label("auth", kind)) for kind in AUTH_TYPES],
            "alg_options": [(a, a) for a in ALGORITHMS],
            "mapping_options": [(m, m) for m in mappings],
            "time_zones": time_zones(),
            "report": report,
            "it_label": it_label,
            "words": words,
        },
        status_code,
    )


async def _form(request: Request) -> FormData:
    return await request.form()


def _action(form: FormData) -> str:
    return "check" if form.get("action") == "check" else "save"


@router.get(ADD_PATH, response_class=HTMLResponse)
def new_source_form(request: Request, principal: SourceManager, settings: SettingsDep) -> Response:
    return _page(request, blank_form(), mappings=mapping_names(settings.mappings_dir), editing=None)


@router.post(ADD_PATH, response_class=HTMLResponse)
async def add_source_from_form(
    request: Request, principal: SourceManager, session: SessionDep, settings: SettingsDep
) -> Response:
    raw = await _form(request)
    mappings = mapping_names(settings.mappings_dir)
    form = check_against(read_form(raw), session, settings.mappings_dir)
    if not form.ok:
        return _page(request, form, mappings=mappings, editing=None, status_code=422)
    if _action(raw) == "check":
        report = run_check(unsaved_source(form))
        return _page(request, form, mappings=mappings, editing=None, report=report)
    try:
        source = save_new(
            session,
            form,
            actor=principal.username,
            user_id=principal.user_id,
            scoped=principal.scope is not None,
            mappings_dir=settings.mappings_dir,
        )
    except SourceError as exc:  # every rule is checked above; this is what the form cannot foresee
        form.refuse("form", N_("the source could not be saved: %(problem)s"), problem=str(exc))
        return _page(request, form, mappings=mappings, editing=None, status_code=422)
    return _saved(request, session, principal, source, N_("Source %(name)s added."))


@router.get("/it/sources/{name}/edit", response_class=HTMLResponse)
def edit_source_form(
    request: Request, name: Annotated[Key, Path()], principal: SourceManager, session: SessionDep, settings: SettingsDep
) -> Response:
    source = source_of(session, principal, name)
    return _page(
        request,
        blank_form(source),
        mappings=mapping_names(settings.mappings_dir),
        editing=source,
        version=settings_version(source),
    )


@router.post("/it/sources/{name}/edit", response_class=HTMLResponse)
async def change_source_from_form(
    request: Request, name: Annotated[Key, Path()], principal: SourceManager, session: SessionDep, settings: SettingsDep
) -> Response:
    source = source_of(session, principal, name)
    raw = await _form(request)
    mappings = mapping_names(settings.mappings_dir)
    form = check_against(read_form(raw, editing=source), session, settings.mappings_dir)
    current = settings_version(source)
    version = raw.get("version")
    given = version if isinstance(version, str) else None
    if not form.ok:
        return _page(request, form, mappings=mappings, editing=source, version=given, status_code=422)
    if _action(raw) == "check":
        report = run_check(unsaved_source(form))
        return _page(request, form, mappings=mappings, editing=source, version=given, report=report)
    if given != current:
        form.refuse(
            "form",
            N_(
                "someone else changed this source since this form was opened: what you typed is below; "
                "check it against the source's settings now and save again"
            ),
        )
        return _page(request, form, mappings=mappings, editing=source, version=current, status_code=409)
    try:
        save_changes(session, source, form, actor=principal.username, mappings_dir=settings.mappings_dir)
    except SourceError as exc:
        form.refuse("form", N_("the source could not be saved: %(problem)s"), problem=str(exc))
        return _page(request, form, mappings=mappings, editing=source, version=current, status_code=422)
    return _saved(request, session, principal, source, N_("Source %(name)s saved."))


def _saved(request: Request, session: SessionDep, principal: SourceManager, source: Source, notice: str) -> Response:
    """The IT page after a save: the connection check of the saved source in its card."""
    report = run_check(source)
    i18n.set_language(language_of(request))
    message = i18n.gettext(notice) % {"name": source.name}
    return answer(request, session, principal, source, checks={source.name: report}, notices={source.name: [message]})
