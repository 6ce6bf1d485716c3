"""Code systems: aliases a mapping may use, labels for reasons, and code-set matching."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from discharge_bridge.fhir.fields import Code

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


# Systems are a handful of URIs seen over and over: normalise each once.
@lru_cache(maxsize=1024)
def norm_system(uri: str) -> str:
    return uri.strip().rstrip("/").lower()


_ICD10_SYSTEMS = frozenset(norm_system(u) for u in ICD10_URIS)


def is_icd10(uri: str) -> bool:
    return norm_system(uri) in _ICD10_SYSTEMS


def norm_icd(code: str) -> str:
    """ICD-10 codes compare without the dot and case: F03.90 == F0390 == f03.90."""
    return code.replace(".", "").replace(" ", "").upper()


@lru_cache(maxsize=8192)
def _normalised(system: str, code: str) -> tuple[str, bool, str]:
    """(normalised system, is it ICD-10, the code as CodeSet compares it): once per distinct Coding."""
    nsys = norm_system(system)
    icd = nsys in _ICD10_SYSTEMS
    value = code.strip()
    return nsys, icd, norm_icd(value) if icd else value


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
    # Derived once here rather than per comparison: a mapping is built once and matched millions
    # of times.
    any_system: bool = field(init=False, repr=False, compare=False)
    icd_prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "any_system", ANY_SYSTEM in self.systems)
        object.__setattr__(self, "icd_prefixes", tuple(norm_icd(p) for p in self.prefixes))

    @classmethod
    def build(cls, uris: tuple[str, ...], codes: list[str], prefixes: list[str]) -> CodeSet:
        systems = frozenset(ANY_SYSTEM if u == ANY_SYSTEM else norm_system(u) for u in uris)
        return cls(
            systems=systems,
            codes=frozenset(norm_icd(c) for c in codes) | frozenset(c.strip() for c in codes),
            prefixes=tuple(p.strip() for p in prefixes),
        )

    def matches(self, code: Code) -> bool:
        system, icd, value = _normalised(code.system, code.code)
        if not self.any_system and system not in self.systems:
            return False
        # str.startswith(tuple) is any(startswith(p) for p in tuple), in C.
        return value in self.codes or value.startswith(self.icd_prefixes if icd else self.prefixes)

    def first_match(self, found: list[Code]) -> Code | None:
        for code in found:
            if self.matches(code):
                return code
        return None


class CodeSets(tuple[CodeSet, ...]):
    """CodeSets in priority order (a tuple), compiled for lookup when the mapping is built.

    `first_match` answers what the plain loop (each set in order, each found code in order)
    answers. Which set a Coding falls in is worked out once per distinct Coding and remembered:
    a mapping is built once and sees the same few hundred codes again and again.
    """

    MEMO_SIZE = 20_000  # distinct Codings remembered per CodeSets; past it, computed every time

    def __init__(self, sets: object = ()) -> None:
        self.memo: dict[Code, int] = {}

    def position(self, code: Code) -> int:
        """The position of the first set that matches `code`, len(self) when none does."""
        found = self.memo.get(code)
        if found is None:
            found = next((i for i, code_set in enumerate(self) if code_set.matches(code)), len(self))
            if len(self.memo) < self.MEMO_SIZE:
                self.memo[code] = found
        return found

    def first_match(self, found: list[Code]) -> Code | None:
        best, best_position = None, len(self)
        memo = self.memo
        for code in found:
            position = memo.get(code)
            if position is None:
                position = self.position(code)
            if position < best_position:  # strictly: on a tie the earlier found code wins
                best, best_position = code, position
        return best


def first_match(code_sets: tuple[CodeSet, ...], found: list[Code]) -> Code | None:
    """The first code in `found` matching the first code set that matches any of them."""
    if isinstance(code_sets, CodeSets):
        return code_sets.first_match(found)
    for code_set in code_sets:
        hit = code_set.first_match(found)
        if hit is not None:
            return hit
    return None
