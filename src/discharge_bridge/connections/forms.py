"""The IT page's source form: what a person typed, read and checked field by field, then saved
through ``connections.service`` (the same rules as ``discharge-bridge sources add / set``).

Secrets are never typed here: a source names the environment variable or the file that holds
each one. An entry that cannot be such a name (a value with spaces or symbols where a variable's
name belongs, a relative path where a file's full path belongs) is refused and *not* kept in the
form shown again: it may be the secret itself, typed in the wrong box.

Every message is English marked with ``N_`` and carries its values apart, so the page shows it in
the reader's language next to its field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session

from discharge_bridge.audit import AdminAction, Target, record_admin_action
from discharge_bridge.connections.check import N_
from discharge_bridge.connections.service import add_source, grant_source, update_source, validate_mapping
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.sources.safety import SourcePolicy, UnsafeSource, check_settings, current_policy
from discharge_bridge.sources.service import NAME, SourceError, find_source

AUTH_TYPES = ("none", "bearer", "basic", "smart")
AUTH_FIELDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "bearer": ("token_env", "token_file"),
    "basic": ("username", "password_env", "password_file"),
    "smart": ("client_id", "private_key_file", "kid", "alg", "scope", "token_url"),
}
ENV_FIELDS = ("token_env", "password_env")
FILE_FIELDS = ("token_file", "password_file", "private_key_file")
ALGORITHMS = ("RS384", "ES384")
# Modes a person may choose here; a source in another mode (subscription: `sources subscribe`) keeps it.
FORM_MODES = (SourceMode.poll, SourceMode.file)
FIELDS = ("name", "hospital", "mode", "base_url", "auth_type", "poll_interval_seconds", "timezone", "mapping")
ALL_FIELDS = FIELDS + tuple(dict.fromkeys(f for names in AUTH_FIELDS.values() for f in names))
# Files of mappings/ that are not a hospital's mapping.
NOT_MAPPINGS = frozenset({"rules", "discharge_dispositions", "handoff_documents"})

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
HOSPITAL_MAX = 200
URL_MAX = 500


@dataclass(frozen=True)
class FieldError:
    field: str  # a form field, or "form" for the whole form
    message: str  # English, %(key)s placeholders; the id of its translations
    params: Mapping[str, object] = dataclasses.field(default_factory=dict)


@dataclass
class SourceForm:
    """The form as typed (refused secret-like entries dropped) and what is wrong with it."""

    values: dict[str, str]
    errors: list[FieldError] = dataclasses.field(default_factory=list)
    editing: str | None = None  # the name of the source being changed; None for a new one

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, name: str) -> FieldError | None:
        return next((e for e in self.errors if e.field == name), None)

    def refuse(self, target: str, message: str, *, forget: bool = False, **params: object) -> None:
        """Record a problem with a field; ``forget`` drops what was typed there (it may be a secret)."""
        self.errors.append(FieldError(target, message, params))
        if forget:
            self.values[target] = ""

    @property
    def mode(self) -> SourceMode:
        return SourceMode(self.values["mode"])

    def auth(self) -> dict[str, Any]:
        """The auth settings as stored: the kind and its fields that were filled in."""
        kind = self.values["auth_type"]
        settings: dict[str, Any] = {"type": kind}
        for name in AUTH_FIELDS.get(kind, ()):
            if self.values.get(name):
                settings[name] = self.values[name]
        return settings

    def changes(self) -> dict[str, Any]:
        """The settings a saved source takes from this form."""
        return {
            "hospital": self.values["hospital"],
            "mode": self.mode,
            "base_url": self.values["base_url"],
            "auth": self.auth(),
            "poll_interval_seconds": int(self.values["poll_interval_seconds"]),
            "timezone": self.values["timezone"],
            "mapping": self.values["mapping"],
        }


def blank_values() -> dict[str, str]:
    values = dict.fromkeys(ALL_FIELDS, "")
    values.update(mode="poll", auth_type="none", poll_interval_seconds="300", timezone="UTC", mapping="default")
    values.update(alg="RS384")
    return values


def values_of(source: Source) -> dict[str, str]:
    """A saved source as the form shows it (the URL without any credentials pasted into it)."""
    values = blank_values()
    values.update(
        name=source.name,
        hospital=source.hospital,
        mode=str(source.mode),
        base_url=_without_credentials(source.base_url),
        auth_type=str(source.auth.get("type", "none")),
        poll_interval_seconds=str(source.poll_interval_seconds),
        timezone=source.timezone,
        mapping=source.mapping,
    )
    for name in ALL_FIELDS:
        if name in source.auth and source.auth[name] is not None and name != "type":
            values[name] = str(source.auth[name])
    return values


def settings_version(source: Source) -> str:
    """A digest of the settings the form edits: a form opened before someone else saved is stale."""
    shown = {
        "hospital": source.hospital,
        "mode": str(source.mode),
        "base_url": source.base_url,
        "auth": source.auth,
        "poll_interval_seconds": source.poll_interval_seconds,
        "timezone": source.timezone,
        "mapping": source.mapping,
    }
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:16]


def mapping_names(mappings_dir: Path) -> list[str]:
    """The mapping files a source may use (``mappings/<name>.yaml``), by name."""
    return sorted(p.stem for p in mappings_dir.glob("*.yaml") if p.stem not in NOT_MAPPINGS)


def modes_offered(editing: Source | None) -> tuple[SourceMode, ...]:
    """Poll or files; a source the EHR pushes to stays so (``sources unsubscribe`` ends that first)."""
    if editing is not None and editing.mode not in FORM_MODES:
        return (editing.mode,)
    return FORM_MODES


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def blank_form(editing: Source | None = None) -> SourceForm:
    """The form as it opens: a new source's defaults, or the source's settings; nothing refused yet."""
    if editing is None:
        return SourceForm(blank_values())
    return SourceForm(values_of(editing), editing=editing.name)


def read_form(raw: Mapping[str, object], *, editing: Source | None = None) -> SourceForm:
    """The submitted fields, trimmed, each checked on its own (no database, no files yet)."""
    values = blank_values() if editing is None else values_of(editing)
    for name in ALL_FIELDS:
        given = raw.get(name)
        if isinstance(given, str):
            values[name] = given.strip()
    if editing is not None:
        values["name"] = editing.name  # a source keeps its name: it is in URLs and commands
    form = SourceForm(values, editing=editing.name if editing is not None else None)
    _check_identity(form, editing)
    _check_where(form, editing)
    _check_auth(form)
    _check_schedule(form)
    return form


def _check_identity(form: SourceForm, editing: Source | None) -> None:
    values = form.values
    if editing is None and not NAME.match(values["name"]):
        form.refuse("name", N_("1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"))
    if not values["hospital"]:
        form.refuse("hospital", N_("give the hospital's name"))
    elif len(values["hospital"]) > HOSPITAL_MAX:
        form.refuse("hospital", N_("at most %(n)s characters"), n=HOSPITAL_MAX)


def _check_where(form: SourceForm, editing: Source | None) -> None:
    values = form.values
    offered = {str(m) for m in modes_offered(editing)}
    if values["mode"] not in offered:
        form.refuse("mode", N_("choose one of the modes offered"))
        values["mode"] = "poll"
    url = values["base_url"]
    if form.mode == SourceMode.file:
        if not url.startswith("/"):
            form.refuse("base_url", N_("give the full path of the folder on this host (starting with /)"))
        elif not Path(url).exists():
            form.refuse(
                "base_url",
                N_("%(folder)s does not exist on this host: a file source reads NDJSON or Bundles from a folder"),
                folder=url,
            )
        return
    parts = urlsplit(url)
    if "@" in parts.netloc:
        form.refuse(
            "base_url",
            N_(
                "the URL holds a user name or password: give credentials in the authentication settings, "
                "not in the URL (what you typed was not kept)"
            ),
            forget=True,
        )
    elif parts.scheme not in ("http", "https") or not parts.netloc:
        form.refuse(
            "base_url", N_("the FHIR R4 base URL, starting with http:// or https:// (e.g. https://ehr/fhir/r4)")
        )
    elif len(url) > URL_MAX:
        form.refuse("base_url", N_("at most %(n)s characters"), n=URL_MAX)


def _check_auth(form: SourceForm) -> None:
    values = form.values
    kind = values["auth_type"]
    if kind not in AUTH_TYPES:
        form.refuse("auth_type", N_("choose one of the kinds offered"))
        values["auth_type"] = "none"
        return
    if form.mode == SourceMode.file:
        values["auth_type"] = "none"  # a folder on this host: nothing to sign in to
        return
    wanted = AUTH_FIELDS[kind]
    for name in ENV_FIELDS:
        if name in wanted and values[name] and not _ENV_NAME.match(values[name]):
            form.refuse(
                name,
                N_(
                    "the NAME of an environment variable (letters, digits and _), not its value: "
                    "what you typed was not kept"
                ),
                forget=True,
            )
    for name in FILE_FIELDS:
        if name in wanted and values[name] and not (values[name].startswith("/") and " " not in values[name]):
            form.refuse(
                name,
                N_("the full path of a file on this host (starting with /): what you typed was not kept"),
                forget=True,
            )
    if kind == "bearer":
        _one_of(form, "token_env", "token_file")
    elif kind == "basic":
        if not values["username"]:
            form.refuse("username", N_("give the user name"))
        _one_of(form, "password_env", "password_file")
    elif kind == "smart":
        for name in ("client_id", "private_key_file", "kid"):
            if not values[name] and form.error(name) is None:
                form.refuse(name, N_("required for SMART Backend Services"))
        if values["alg"] not in ALGORITHMS:
            form.refuse("alg", N_("choose one of the algorithms offered"))
            values["alg"] = "RS384"
        token_url = values["token_url"]
        if token_url and urlsplit(token_url).scheme not in ("http", "https"):
            form.refuse("token_url", N_("an http:// or https:// URL, or empty to discover it"))


def _one_of(form: SourceForm, env: str, file: str) -> None:
    if form.error(env) or form.error(file):
        return
    given = [name for name in (env, file) if form.values[name]]
    if len(given) != 1:
        message = N_("give the environment variable or the file that holds the secret: one of them, not both")
        form.refuse(env, message)
        form.refuse(file, message)


def _check_schedule(form: SourceForm) -> None:
    values = form.values
    interval = values["poll_interval_seconds"]
    if not interval.isdigit() or int(interval) < 10 or int(interval) > 7 * 86400:
        form.refuse("poll_interval_seconds", N_("a whole number of seconds, from 10 to 604800 (a week)"))
    try:
        ZoneInfo(values["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        form.refuse("timezone", N_("unknown time zone: use an IANA name such as Europe/Moscow"))


def check_against(
    form: SourceForm, session: Session, mappings_dir: Path, policy: SourcePolicy | None = None
) -> SourceForm:
    """The checks that read the database, the mapping files and the network: a free name, a usable
    mapping, and where the source points (``sources.safety``: before a check connects to it, too)."""
    values = form.values
    if form.error("base_url") is None and form.error("token_url") is None:
        try:
            check_settings(form.mode, values["base_url"], form.auth(), policy or current_policy())
        except UnsafeSource as exc:
            params: dict[str, Any] = dict(exc.params)
            form.refuse(exc.field if exc.field in ALL_FIELDS else "base_url", exc.template, **params)
    if form.editing is None and form.error("name") is None and find_source(session, values["name"]) is not None:
        form.refuse("name", N_("a source named %(name)s exists already"), name=values["name"])
    if values["mapping"] not in mapping_names(mappings_dir):
        form.refuse("mapping", N_("choose one of the mapping files offered"))
    else:
        try:
            validate_mapping(values["mapping"], mappings_dir)
        except SourceError as exc:
            form.refuse("mapping", N_("this mapping cannot be used: %(problem)s"), problem=str(exc))
    return form


def unsaved_source(form: SourceForm) -> Source:
    """The source as the form describes it, not stored: what the connection check runs against."""
    assert form.ok
    changes = form.changes()
    base_url = changes["base_url"]
    if changes["mode"] == SourceMode.file:
        base_url = str(Path(base_url).resolve())
    return Source(
        name=form.values["name"],
        hospital=changes["hospital"],
        base_url=base_url.rstrip("/"),
        auth=changes["auth"],
        timezone=changes["timezone"],
        mode=changes["mode"],
        poll_interval_seconds=changes["poll_interval_seconds"],
        mapping=changes["mapping"],
    )


def save_new(
    session: Session, form: SourceForm, *, actor: str, user_id: int | None, scoped: bool, mappings_dir: Path
) -> Source:
    """Add the source; a person who sees only some hospitals is given this one too (they set it up).
    The audit trail records it (settings as the form shows them: secrets are only env/file names)."""
    assert form.ok
    changes = form.changes()
    source = add_source(
        session,
        name=form.values["name"],
        hospital=changes["hospital"],
        base_url=changes["base_url"],
        auth=changes["auth"],
        timezone=changes["timezone"],
        mode=changes["mode"],
        poll_interval_seconds=changes["poll_interval_seconds"],
        mapping=changes["mapping"],
        mappings_dir=mappings_dir,
    )
    if scoped and user_id is not None:
        assert source.id is not None
        grant_source(session, user_id, source.id)
    record_admin_action(session, actor, AdminAction.source_add, Target("source", source.name), values_of(source))
    return source


def save_changes(session: Session, source: Source, form: SourceForm, *, actor: str, mappings_dir: Path) -> Source:
    """Change the source's settings (its data, cursors and dead letters stay), audited (`record_edit`)."""
    assert form.ok
    before = audited_settings(source)
    saved = update_source(session, source.name, form.changes(), mappings_dir=mappings_dir)
    record_edit(session, actor, before, saved)
    return saved


def audited_settings(source: Source) -> dict[str, Any]:
    """What the audit trail shows of a source: the form's values (secrets only as env/file names) and
    the settings only the CLI changes."""
    return values_of(source) | {
        "enabled": source.enabled,
        "inpatient_classes": list(source.inpatient_classes),
        "assignment": dict(source.assignment),
        "morning_time": source.morning_time,
        # write-back's switch and resources (ehr/writeback/settings.py), not its moving watermark
        "writeback": {k: v for k, v in (source.writeback or {}).items() if k in ("enabled", "resources")},
        "smart_launch": dict(source.smart_launch or {}),  # SMART App Launch client (ehr/launch/settings.py)
        "cds_hooks": dict(source.cds_hooks or {}),  # the EHR's CDS Hooks client (ehr/cds/settings.py)
    }


def record_edit(session: Session, actor: str, before: dict[str, Any], saved: Source) -> None:
    """Each changed setting from -> to in one entry, and a mapping change as its own entry."""
    after = audited_settings(saved)
    changed = {k: {"from": before.get(k), "to": after[k]} for k in after if before.get(k) != after[k]}
    if changed:
        record_admin_action(session, actor, AdminAction.source_edit, Target("source", saved.name), changed)
    if "mapping" in changed:
        record_admin_action(session, actor, AdminAction.mapping_set, Target("source", saved.name), changed["mapping"])
