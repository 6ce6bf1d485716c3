"""Charlson comorbidity index from ICD-10 codes: Quan et al. 2005 enhanced ICD-10 coding algorithm.

Quan H, Sundararajan V, Halfon P, et al. "Coding algorithms for defining comorbidities in ICD-9-CM
and ICD-10 administrative data." Med Care 2005;43(11):1130-9 (table 1), with the original Charlson
weights (Charlson 1987), the ones LACE uses. Codes are prefixes without the dot, so ICD-10-CM's
longer codes (E11.21, I50.32) fall under their ICD-10 parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


def _expand(spec: str) -> list[str]:
    """`I42.5-I42.9` -> I425..I429; `C00-C26` -> C00..C26; `B18` -> B18."""
    out: list[str] = []
    for item in spec.split(","):
        item = item.strip().replace(".", "")
        if "-" not in item:
            out.append(item)
            continue
        start, end = (part.strip() for part in item.split("-"))
        head = start[:1]
        width = len(start) - 1
        for number in range(int(start[1:]), int(end[1:]) + 1):
            out.append(f"{head}{number:0{width}d}")
    return out


@dataclass(frozen=True)
class Category:
    name: str
    weight: int
    prefixes: tuple[str, ...]


def _cat(name: str, weight: int, spec: str) -> Category:
    return Category(name, weight, tuple(_expand(spec)))


CATEGORIES: tuple[Category, ...] = (
    _cat("myocardial_infarction", 1, "I21, I22, I25.2"),
    _cat("congestive_heart_failure", 1, "I09.9, I11.0, I13.0, I13.2, I25.5, I42.0, I42.5-I42.9, I43, I50, P29.0"),
    _cat(
        "peripheral_vascular_disease",
        1,
        "I70, I71, I73.1, I73.8, I73.9, I77.1, I79.0, I79.2, K55.1, K55.8, K55.9, Z95.8, Z95.9",
    ),
    _cat("cerebrovascular_disease", 1, "G45, G46, H34.0, I60-I69"),
    _cat("dementia", 1, "F00-F03, F05.1, G30, G31.1"),
    _cat("chronic_pulmonary_disease", 1, "I27.8, I27.9, J40-J47, J60-J67, J68.4, J70.1, J70.3"),
    _cat("rheumatic_disease", 1, "M05, M06, M31.5, M32-M34, M35.1, M35.3, M36.0"),
    _cat("peptic_ulcer_disease", 1, "K25-K28"),
    _cat(
        "mild_liver_disease",
        1,
        "B18, K70.0-K70.3, K70.9, K71.3-K71.5, K71.7, K73, K74, K76.0, K76.2-K76.4, K76.8, K76.9, Z94.4",
    ),
    _cat(
        "diabetes_uncomplicated",
        1,
        "E10.0, E10.1, E10.6, E10.8, E10.9, E11.0, E11.1, E11.6, E11.8, E11.9, E12.0, E12.1, E12.6, "
        "E12.8, E12.9, E13.0, E13.1, E13.6, E13.8, E13.9, E14.0, E14.1, E14.6, E14.8, E14.9",
    ),
    _cat(
        "diabetes_complicated",
        2,
        "E10.2-E10.5, E10.7, E11.2-E11.5, E11.7, E12.2-E12.5, E12.7, E13.2-E13.5, E13.7, E14.2-E14.5, E14.7",
    ),
    _cat("hemiplegia_paraplegia", 2, "G04.1, G11.4, G80.1, G80.2, G81, G82, G83.0-G83.4, G83.9"),
    _cat("renal_disease", 2, "I12.0, I13.1, N03.2-N03.7, N05.2-N05.7, N18, N19, N25.0, Z49.0-Z49.2, Z94.0, Z99.2"),
    _cat("malignancy", 2, "C00-C26, C30-C34, C37-C41, C43, C45-C58, C60-C76, C81-C85, C88, C90-C97"),
    _cat(
        "moderate_severe_liver_disease",
        3,
        "I85.0, I85.9, I86.4, I98.2, K70.4, K71.1, K72.1, K72.9, K76.5, K76.6, K76.7",
    ),
    _cat("metastatic_solid_tumour", 6, "C77-C80"),
    _cat("hiv_aids", 6, "B20-B22, B24"),
)

# A worse form of a disease replaces the milder one rather than adding to it (Charlson's rule).
SUPERSEDES = {
    "diabetes_complicated": "diabetes_uncomplicated",
    "moderate_severe_liver_disease": "mild_liver_disease",
    "metastatic_solid_tumour": "malignancy",
}


# Prefix lookup table: {prefix length: {prefix: categories}}. `code.startswith(p)` is
# `code[:len(p)] == p`, so a code needs one dict probe per distinct prefix length (3 and 4)
# instead of a scan over the ~500 expanded prefixes.
_BY_PREFIX: dict[int, dict[str, frozenset[str]]] = {}
for _category in CATEGORIES:
    for _prefix in _category.prefixes:
        _table = _BY_PREFIX.setdefault(len(_prefix), {})
        _table[_prefix] = _table.get(_prefix, frozenset()) | {_category.name}
WEIGHTS = {c.name: c.weight for c in CATEGORIES}


@lru_cache(maxsize=4096)
def _code_categories(raw: str) -> frozenset[str]:
    """The categories one ICD-10 code falls under, before Charlson's supersede rule."""
    code = raw.replace(".", "").replace(" ", "").upper()
    found: frozenset[str] = frozenset()
    for length, table in _BY_PREFIX.items():
        hit = table.get(code[:length])
        if hit:
            found |= hit
    return found


def categories_for(icd10_codes: list[str]) -> set[str]:
    found: set[str] = set()
    for raw in icd10_codes:
        found |= _code_categories(raw)
    for worse, milder in SUPERSEDES.items():
        if worse in found:
            found.discard(milder)
    return found


def charlson_index(icd10_codes: list[str]) -> int:
    """The Charlson index (sum of category weights, each category once) of a set of ICD-10 codes."""
    return sum(WEIGHTS[name] for name in categories_for(icd10_codes))
