"""What the hospital IT pages share: who may open them, labels, and the services' messages put into
the reader's language.

The services below the pages speak English. Messages written for translation (the connection
check's items, the source form's refusals) travel as an English message id and its values, and
are looked up here; a few fixed answers of the layers below (dead-letter replay outcomes) are
matched by their English prefix. Values inside a message (a URL, a server's own error text) stay
as they came.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response

from discharge_bridge.connections.check import CheckReport, Words
from discharge_bridge.connections.deadletters import fault_of
from discharge_bridge.connections.forms import FieldError
from discharge_bridge.connections.status import SourceStatus, source_statuses
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SessionDep, require
from discharge_bridge.scheduling import sync_now
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound, get_source
from discharge_bridge.ui import i18n
from discharge_bridge.ui.templating import language_of, render
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission


def N_(message: str) -> str:  # the gettext convention for "translate later"
    return message


SourceManager = Annotated[Principal, Depends(require(Permission.manage_sources))]

LABELS: dict[str, dict[str, str]] = {
    "mode": {"poll": N_("Polling"), "subscription": N_("Subscription"), "bulk": N_("Bulk export"), "file": N_("Files")},
    "run": {"ok": N_("Sync succeeded"), "failed": N_("Sync failed"), "running": N_("Sync running")},
    "sync_now": {
        "queued": N_("Sync requested"),
        "running": N_("Sync running"),
        "ok": N_("Sync succeeded"),
        "failed": N_("Sync failed"),
    },
    "check": {"ok": N_("OK"), "warning": N_("Warning"), "failed": N_("Problem")},
    "auth": {
        "none": N_("No authentication"),
        "bearer": N_("Bearer token"),
        "basic": N_("Basic (user name and password)"),
        "smart": N_("SMART Backend Services"),
    },
    "auth_name": {
        "token_env": N_("Token from environment variable"),
        "token_file": N_("Token from file"),
        "password_env": N_("Password from environment variable"),
        "password_file": N_("Password from file"),
        "private_key_file": N_("Private key file"),
    },
    # Names of the connection check's items (check.py and status.py); resource types stay as they are.
    "check_item": {
        "CapabilityStatement": N_("CapabilityStatement"),
        "FHIR version": N_("FHIR version"),
        "Authentication": N_("Authentication"),
        "Authenticated search": N_("Authenticated search"),
        "Base URL": N_("Base URL"),
        "File source": N_("File source"),
        "Folder": N_("Folder"),
        "Readable records": N_("Readable records"),
    },
}

# Replay outcomes (ingest/deadletters.py): fixed words, or fixed words followed by a reason.
REPLAY_WORDS = {
    "ingested": N_("ingested"),
    "deleted on the EHR; nothing to ingest": N_("deleted on the EHR; nothing to ingest"),
}
REPLAY_PREFIXES = {
    "still not JSON: ": N_("still not JSON: %(rest)s"),
    "still unusable: ": N_("still unusable: %(rest)s"),
    "could not re-read from the EHR: ": N_("could not re-read from the EHR: %(rest)s"),
}


def it_label(kind: str, value: object) -> str:
    text = str(value)
    found = LABELS[kind].get(text)
    return i18n.gettext(found) if found else text


def translated(message: str, params: Mapping[str, object] | None = None) -> str:
    """An English message id of the services in the reader's language, its values filled in."""
    text = i18n.gettext(message)
    return text % dict(params) if params else text


def words(item_words: tuple[Words, ...] | Words) -> str:
    """A connection check item's messages (or one message) in the reader's language."""
    if isinstance(item_words, Words):
        return translated(item_words.message, item_words.params)
    return "; ".join(translated(w.message, w.params) for w in item_words)


def field_error(error: FieldError | None) -> str:
    return translated(error.message, error.params) if error is not None else ""


def replay_detail(detail: str) -> str:
    """A replay outcome's words in the reader's language (the reason it quotes stays as stored)."""
    if detail in REPLAY_WORDS:
        return i18n.gettext(REPLAY_WORDS[detail])
    for prefix, message in REPLAY_PREFIXES.items():
        if detail.startswith(prefix):
            return translated(message, {"rest": detail.removeprefix(prefix)})
    return detail


def duration(seconds: float | None) -> str:
    """A lag in the largest two units that matter: "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    if seconds is None:
        return "—"
    s = max(int(seconds), 0)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 60:
        return i18n.gettext("%(n)s s") % {"n": s}
    if s < 3600:
        return i18n.gettext("%(n)s min") % {"n": minutes}
    if s < 86400:
        return i18n.gettext("%(h)s h %(m)s min") % {"h": hours, "m": minutes % 60}
    return i18n.gettext("%(d)s d %(h)s h") % {"d": days, "h": hours % 24}


# -- the page and a source's card ------------------------------------------------------------------

POLL_SECONDS = 2  # how often a card with a running sync asks for itself again
# A sync run row still "running" after this long was left by a process that died: stop waiting for it.
RUNNING_STALE = timedelta(hours=1)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def source_of(session: SessionDep, principal: Principal, name: str) -> Source:
    try:
        return get_source(session, name, source_ids=principal.scope)
    except SourceNotFound:
        raise HTTPException(404, i18n.gettext("No such source among yours: %(name)s") % {"name": name}) from None


def _syncing(status: SourceStatus, asked: sync_now.SyncNow | None) -> bool:
    """Whether a pass of this source is under way: asked here and not ended, or a run row still open."""
    if asked is not None and asked.in_flight:
        return True
    run = status.public.last_run
    return run is not None and run.status == "running" and utcnow() - run.started_at < RUNNING_STALE


def context(statuses: list[SourceStatus], **extra: Any) -> dict[str, Any]:
    asked = {s.public.name: sync_now.status(s.public.name) for s in statuses}
    return {
        "title": i18n.gettext("Hospital IT"),
        "statuses": statuses,
        "it_label": it_label,
        "duration": duration,
        "words": words,
        "fault_of": fault_of,
        "sync_now": asked,
        "syncing": {s.public.name: _syncing(s, asked[s.public.name]) for s in statuses},
        "poll_seconds": POLL_SECONDS,
        "checks": {},
        "notices": {},
        **extra,
    }


def answer(
    request: Request,
    session: SessionDep,
    principal: Principal,
    source: Source,
    *,
    checks: dict[str, CheckReport] | None = None,
    notices: dict[str, list[str]] | None = None,
    status_code: int = 200,
) -> Response:
    """The changed source's card (htmx) or the whole page, with the result shown in that card.

    The page shows the reader's sources and this one (which they may have added just now)."""
    i18n.set_language(language_of(request))
    assert source.id is not None
    scope = principal.scope
    if _is_htmx(request):
        scope = [source.id]
    elif scope is not None and source.id not in scope:
        scope = [*scope, source.id]
    statuses = source_statuses(session, source_ids=scope, now=utcnow())
    page = context(statuses, checks=checks or {}, notices=notices or {})
    if _is_htmx(request):
        return render(request, "it/source.html", {**page, "status": statuses[0]}, status_code)
    return render(request, "it.html", page, status_code)
