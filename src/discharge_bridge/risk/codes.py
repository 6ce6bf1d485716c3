"""Code systems: aliases a mapping may use, labels for reasons, and code-set matching."""

from __future__ import annotations

from dataclasses import dataclass

from discharge_bridge.risk._fhir import Code

ICD10_URIS = (
    "http://hl7.org/fhir/sid/icd-10",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "urn:oid:2.16.840.1.113883.6.3",
    "urn:oid:2.16.840.1.113883.6.90",
)

# Built-in aliases; a mapping's `systems:` adds to or overrides these. OIDs are what some
# CDA-era EHRs still put in Coding.system.
BUILTIN_SYSTEMS: dict[str, tuple[str, ...]] = {
    "icd10": ICD10_URIS,
    "icd10cm": ("http://hl7.org/fhir/sid/icd-10-cm", "urn:oid:2.16.840.1.113883.6.90"),
    "snomed": ("http://snomed.info/sct", "urn:oid:2.16.840.1.113883.6.96"),
    "loinc": ("http://loinc.org", "urn:oid:2.16.840.1.113883.6.1"),
    "v2-0063": ("http://terminology.hl7.org/CodeSystem/v2-0063",),
    "v2-0131": ("http://terminology.hl7.org/CodeSystem/v2-0131",),
    "v2-0220": ("http://terminology.hl7.org/CodeSystem/v2-0220",),
    "v3-ActCode": ("http://terminology.hl7.org/CodeSystem/v3-ActCode",),
    "v3-ActPriority": ("http://terminology.hl7.org/CodeSystem/v3-ActPriority",),
    "v3-LivingArrangement": ("http://terminology.hl7.org/CodeSystem/v3-LivingArrangement",),
    "v3-RoleCode": ("http://terminology.hl7.org/CodeSystem/v3-RoleCode",),
    "v3-RoleClass": ("http://terminology.hl7.org/CodeSystem/v3-RoleClass",),
}

_LABELS = {
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "urn:oid:2.16.840.1.113883.6.3": "ICD-10",
    "urn:oid:2.16.840.1.113883.6.90": "ICD-10-CM",
    "http://snomed.info/sct": "SNOMED",
    "urn:oid:2.16.840.1.113883.6.96": "SNOMED",
    "http://loinc.org": "LOINC",
    "urn:oid:2.16.840.1.113883.6.1": "LOINC",
}

ANY_SYSTEM = "*"


def norm_system(uri: str) -> str:
    return uri.strip().rstrip("/").lower()


def is_icd10(uri: str) -> bool:
    return norm_system(uri) in {norm_system(u) for u in ICD10_URIS}


def norm_icd(code: str) -> str:
    """ICD-10 codes compare without the dot and case: F03.90 == F0390 == f03.90."""
    return code.replace(".", "").replace(" ", "").upper()


def system_label(uri: str) -> str:
    """A short name for reasons: `SNOMED`, `ICD-10`, else the URI's last path segment."""
    if not uri:
        return "no system"
    label = _LABELS.get(norm_system(uri))
    return label or uri.rstrip("/").rsplit("/", 1)[-1]


def describe(code: Code) -> str:
    return f"{system_label(code.system)} {code.code}"


@dataclass(frozen=True)
class CodeSet:
    """Codes and code prefixes in one or more systems (`*` = any system, the EHR's local codes)."""

    systems: frozenset[str]
    codes: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def build(cls, uris: tuple[str, ...], codes: list[str], prefixes: list[str]) -> CodeSet:
        systems = frozenset(ANY_SYSTEM if u == ANY_SYSTEM else norm_system(u) for u in uris)
        return cls(
            systems=systems,
            codes=frozenset(norm_icd(c) for c in codes) | frozenset(c.strip() for c in codes),
            prefixes=tuple(p.strip() for p in prefixes),
        )

    def matches(self, code: Code) -> bool:
        system = norm_system(code.system)
        if ANY_SYSTEM not in self.systems and system not in self.systems:
            return False
        value = code.code.strip()
        if is_icd10(code.system):
            value = norm_icd(value)
            return value in self.codes or any(value.startswith(norm_icd(p)) for p in self.prefixes)
        return value in self.codes or any(value.startswith(p) for p in self.prefixes)

    def first_match(self, found: list[Code]) -> Code | None:
        return next((c for c in found if self.matches(c)), None)


def first_match(code_sets: tuple[CodeSet, ...], found: list[Code]) -> Code | None:
    for code_set in code_sets:
        hit = code_set.first_match(found)
        if hit is not None:
            return hit
    return None
