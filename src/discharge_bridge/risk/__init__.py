"""The pure risk core: mappings turn FHIR into facts, rules turn facts into a priority with reasons.

No database, no HTTP: every function takes plain FHIR R4 JSON dicts and returns values. The rule
set and the mappings are read through ``loading`` (parsed once per version of their files).
"""

from discharge_bridge.risk import loading
from discharge_bridge.risk.ages import age_at
from discharge_bridge.risk.evidence import is_flaggable
from discharge_bridge.risk.facts import Fact, extract_facts
from discharge_bridge.risk.hospital import HospitalScore, compute_hospital
from discharge_bridge.risk.lace import LaceScore, compute_lace
from discharge_bridge.risk.mapping import Mapping, MappingError
from discharge_bridge.risk.record import PatientRecord, record_from_bundle
from discharge_bridge.risk.rules import Assessment, Reason, RuleSet, RuleSetError, assess

__all__ = [
    "Assessment",
    "Fact",
    "HospitalScore",
    "LaceScore",
    "Mapping",
    "MappingError",
    "PatientRecord",
    "Reason",
    "RuleSet",
    "RuleSetError",
    "age_at",
    "assess",
    "compute_hospital",
    "compute_lace",
    "extract_facts",
    "is_flaggable",
    "loading",
    "record_from_bundle",
]
