"""The connection check hospital IT runs before the first sync.

It reads the CapabilityStatement and tries one authenticated search, then says, per item, what is
fine and what to change, in words an integration engineer can act on.

An item's words are English messages with ``%(name)s`` placeholders and the values that fill them:
the terminal prints ``detail``; the IT page shows each message in the reader's language (every
message is marked with ``N_``, so the translation test finds it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from discharge_bridge.fhir import FhirAuthError, FhirClient, FhirError
from discharge_bridge.fhir.fields import obj
from discharge_bridge.sources.models import Source

# What a poll pass asks of the server, per resource type.
NEEDED_SEARCH_PARAMS: dict[str, tuple[str, ...]] = {
    "Encounter": ("_lastUpdated", "class", "patient"),
    "Patient": ("_id",),
    "Condition": ("patient", "_lastUpdated"),
    "Observation": ("patient", "category", "_lastUpdated"),
    "RelatedPerson": ("patient", "_lastUpdated"),
}
# Common parameters servers support without listing them in the CapabilityStatement.
IMPLICIT_PARAMS = {"_id", "_lastUpdated"}


def N_(message: str) -> str:
    """Marks an English message for translation; the page translates it where it is shown."""
    return message


class CheckStatus(StrEnum):
    ok = "ok"
    warning = "warning"
    failed = "failed"


@dataclass(frozen=True)
class Words:
    """One message of an item: its English text (the id of its translations) and its values."""

    message: str
    params: Mapping[str, object] = field(default_factory=dict)

    def english(self) -> str:
        return self.message % dict(self.params) if self.params else self.message


@dataclass(frozen=True)
class CheckItem:
    name: str
    status: CheckStatus
    words: tuple[Words, ...]

    @property
    def detail(self) -> str:
        """The item's messages in English, with their values filled in."""
        return "; ".join(w.english() for w in self.words)


def item(name: str, status: CheckStatus, message: str, **params: object) -> CheckItem:
    """An item of one message."""
    return CheckItem(name, status, (Words(message, params),))


@dataclass
class CheckReport:
    source: str
    items: list[CheckItem]

    @property
    def ok(self) -> bool:
        return all(item.status != CheckStatus.failed for item in self.items)


def _rest_resources(capability: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for rest in capability.get("rest") or []:
        if isinstance(rest, dict) and rest.get("mode", "server") == "server":
            return {str(r.get("type")): r for r in rest.get("resource") or [] if isinstance(r, dict)}
    return {}


def _version_item(capability: dict[str, Any]) -> CheckItem:
    version = str(capability.get("fhirVersion") or "")
    if version.startswith(("4.0", "4.3")):
        return item("FHIR version", CheckStatus.ok, N_("FHIR %(version)s (R4)"), version=version)
    if not version:
        return item("FHIR version", CheckStatus.warning, N_("the CapabilityStatement names no fhirVersion"))
    return item(
        "FHIR version",
        CheckStatus.failed,
        N_(
            "the server speaks FHIR %(version)s; discharge_bridge needs an R4 (4.0.1) endpoint: "
            "ask the vendor for the R4 base URL"
        ),
        version=version,
    )


def _resource_items(capability: dict[str, Any]) -> list[CheckItem]:
    resources = _rest_resources(capability)
    items = []
    for rtype, params in NEEDED_SEARCH_PARAMS.items():
        declared = resources.get(rtype)
        if declared is None:
            items.append(
                item(
                    rtype,
                    CheckStatus.failed,
                    N_("%(type)s is not in the CapabilityStatement: grant the client read and search on %(type)s"),
                    type=rtype,
                )
            )
            continue
        interactions = {i.get("code") for i in declared.get("interaction") or [] if isinstance(i, dict)}
        supported = {p.get("name") for p in declared.get("searchParam") or [] if isinstance(p, dict)}
        missing = [p for p in params if p not in supported and p not in IMPLICIT_PARAMS]
        problems: list[Words] = []
        if interactions and "search-type" not in interactions:
            problems.append(Words(N_("search is not offered")))
        if missing:
            problems.append(Words(N_("search parameters not declared: %(names)s"), {"names": ", ".join(missing)}))
        if rtype == "Encounter" and "Encounter:subject" not in (declared.get("searchInclude") or []):
            problems.append(Words(N_("_include=Encounter:subject not declared (patients will be fetched separately)")))
        if problems:
            items.append(CheckItem(rtype, CheckStatus.warning, tuple(problems)))
        else:
            items.append(item(rtype, CheckStatus.ok, N_("search and the parameters the sync uses are declared")))
    return items


def auth_failure(exc: FhirError) -> Words:
    """A failed search in words: the advice when the search itself got a 401 or 403, else the
    client's own account of it (a token endpoint's refusal names that endpoint and what it said)."""
    searched = "/Encounter" in exc.url
    if isinstance(exc, FhirAuthError) and searched and exc.status_code == 401:
        return Words(
            N_("the server answered 401: it rejected the credentials; check the token / client registration"),
        )
    if isinstance(exc, FhirAuthError) and searched and exc.status_code == 403:
        return Words(N_("the server answered 403: access denied; check the scopes granted to this client"))
    return Words(N_("the request failed: %(error)s"), {"error": str(exc)})


def _auth_item(client: FhirClient, source: Source) -> CheckItem:
    auth_type = str(source.auth.get("type", "none"))
    try:
        page = next(iter(client.search_pages("Encounter", {"_count": "1", "_summary": "count"})), None)
    except FhirAuthError as exc:
        return CheckItem("Authentication", CheckStatus.failed, (auth_failure(exc),))
    except FhirError as exc:
        return CheckItem("Authenticated search", CheckStatus.failed, (auth_failure(exc),))
    total = page.bundle.get("total") if page else None
    if isinstance(total, int):
        return item(
            "Authentication",
            CheckStatus.ok,
            N_("%(auth)s auth accepted; an Encounter search answered (%(total)s encounters on the server)"),
            auth=auth_type,
            total=total,
        )
    return item(
        "Authentication", CheckStatus.ok, N_("%(auth)s auth accepted; an Encounter search answered"), auth=auth_type
    )


def check_source(source: Source, client: FhirClient) -> CheckReport:
    """Run every check; later checks still run after an earlier warning."""
    items: list[CheckItem] = []
    try:
        capability = client.capabilities()
    except FhirError as exc:
        items.append(
            item(
                "CapabilityStatement",
                CheckStatus.failed,
                N_(
                    "GET %(url)s/metadata failed: %(error)s. Check the base URL (it should end at the "
                    "FHIR R4 root, e.g. https://ehr.example/fhir/r4) and that this host can reach it."
                ),
                url=source.base_url,
                error=str(exc),
            )
        )
        return CheckReport(source.name, items)
    if capability.get("resourceType") != "CapabilityStatement":
        items.append(
            item(
                "CapabilityStatement",
                CheckStatus.failed,
                N_("%(url)s/metadata did not return a CapabilityStatement: is this the FHIR base URL?"),
                url=source.base_url,
            )
        )
        return CheckReport(source.name, items)
    software = obj(capability.get("software"))
    name = " ".join(str(v) for v in (software.get("name"), software.get("version")) if v)
    if name:
        items.append(item("CapabilityStatement", CheckStatus.ok, N_("read (%(software)s)"), software=name))
    else:
        items.append(item("CapabilityStatement", CheckStatus.ok, N_("read")))
    items.append(_version_item(capability))
    items.extend(_resource_items(capability))
    items.append(_auth_item(client, source))
    return CheckReport(source.name, items)
