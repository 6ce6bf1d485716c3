"""The connection check hospital IT runs before the first sync.

It reads the CapabilityStatement and tries one authenticated search, then says, per item, what is
fine and what to change, in words an integration engineer can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
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


class CheckStatus(StrEnum):
    ok = "ok"
    warning = "warning"
    failed = "failed"


@dataclass(frozen=True)
class CheckItem:
    name: str
    status: CheckStatus
    detail: str


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
        return CheckItem("FHIR version", CheckStatus.ok, f"FHIR {version} (R4)")
    if not version:
        return CheckItem("FHIR version", CheckStatus.warning, "the CapabilityStatement names no fhirVersion")
    return CheckItem(
        "FHIR version",
        CheckStatus.failed,
        f"the server speaks FHIR {version}; discharge_bridge needs an R4 (4.0.1) endpoint: "
        "ask the vendor for the R4 base URL",
    )


def _resource_items(capability: dict[str, Any]) -> list[CheckItem]:
    resources = _rest_resources(capability)
    items = []
    for rtype, params in NEEDED_SEARCH_PARAMS.items():
        declared = resources.get(rtype)
        if declared is None:
            items.append(
                CheckItem(
                    rtype,
                    CheckStatus.failed,
                    f"{rtype} is not in the CapabilityStatement: grant the client read and search on {rtype}",
                )
            )
            continue
        interactions = {i.get("code") for i in declared.get("interaction") or [] if isinstance(i, dict)}
        supported = {p.get("name") for p in declared.get("searchParam") or [] if isinstance(p, dict)}
        missing = [p for p in params if p not in supported and p not in IMPLICIT_PARAMS]
        problems = []
        if interactions and "search-type" not in interactions:
            problems.append("search is not offered")
        if missing:
            problems.append("search parameters not declared: " + ", ".join(missing))
        if rtype == "Encounter" and "Encounter:subject" not in (declared.get("searchInclude") or []):
            problems.append("_include=Encounter:subject not declared (patients will be fetched separately)")
        if problems:
            items.append(CheckItem(rtype, CheckStatus.warning, "; ".join(problems)))
        else:
            items.append(CheckItem(rtype, CheckStatus.ok, "search and the parameters the sync uses are declared"))
    return items


def _auth_item(client: FhirClient, source: Source) -> CheckItem:
    auth_type = source.auth.get("type", "none")
    try:
        page = next(iter(client.search_pages("Encounter", {"_count": "1", "_summary": "count"})), None)
    except FhirAuthError as exc:
        return CheckItem("Authentication", CheckStatus.failed, str(exc))
    except FhirError as exc:
        return CheckItem("Authenticated search", CheckStatus.failed, str(exc))
    total = page.bundle.get("total") if page else None
    detail = f"{auth_type} auth accepted; an Encounter search answered"
    if isinstance(total, int):
        detail += f" ({total} encounters on the server)"
    return CheckItem("Authentication", CheckStatus.ok, detail)


def check_source(source: Source, client: FhirClient) -> CheckReport:
    """Run every check; later checks still run after an earlier warning."""
    items: list[CheckItem] = []
    try:
        capability = client.capabilities()
    except FhirError as exc:
        items.append(
            CheckItem(
                "CapabilityStatement",
                CheckStatus.failed,
                f"GET {source.base_url}/metadata failed: {exc}. Check the base URL (it should end at the "
                "FHIR R4 root, e.g. https://ehr.example/fhir/r4) and that this host can reach it.",
            )
        )
        return CheckReport(source.name, items)
    if capability.get("resourceType") != "CapabilityStatement":
        items.append(
            CheckItem(
                "CapabilityStatement",
                CheckStatus.failed,
                f"{source.base_url}/metadata did not return a CapabilityStatement: is this the FHIR base URL?",
            )
        )
        return CheckReport(source.name, items)
    software = obj(capability.get("software"))
    name = " ".join(str(v) for v in (software.get("name"), software.get("version")) if v)
    items.append(CheckItem("CapabilityStatement", CheckStatus.ok, f"read ({name})" if name else "read"))
    items.append(_version_item(capability))
    items.extend(_resource_items(capability))
    items.append(_auth_item(client, source))
    return CheckReport(source.name, items)
