"""Relationship codes of contacts, and the words a page shows for them.

RelatedPerson.relationship carries kinship in HL7 v3 RoleCode (MTH, DAU, GUARD...); Patient.contact
usually carries a *role* in HL7 v2-0131 (N next of kin, C emergency contact), with the kinship only
in ``text`` ("nephew"). So the kinship code wins, then a ``text`` that is a known kinship word, then
the role, then whatever display the EHR sent. The English labels are message ids (marked ``N_``):
the pages translate them, the API shows them as they are.
Codes: https://terminology.hl7.org/CodeSystem-v3-RoleCode.html, https://terminology.hl7.org/CodeSystem-v2-0131.html
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

from discharge_bridge.fhir.fields import Code, codes, text

V3_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


def N_(message: str) -> str:  # the gettext convention for "translate later"
    return message


# v3 RoleCode (personal relationships) and the v2-0063 codes some v2-fed EHRs send instead.
KINSHIP: dict[str, str] = {
    "MTH": N_("Mother"),
    "FTH": N_("Father"),
    "PRN": N_("Parent"),
    "GUARD": N_("Guardian"),
    "STPMTH": N_("Stepmother"),
    "STPFTH": N_("Stepfather"),
    "MTHFOST": N_("Foster mother"),
    "FTHFOST": N_("Foster father"),
    "ADOPTM": N_("Adoptive mother"),
    "ADOPTF": N_("Adoptive father"),
    "DAU": N_("Daughter"),
    "SON": N_("Son"),
    "CHILD": N_("Child"),
    "SPS": N_("Spouse"),
    "WIFE": N_("Wife"),
    "HUSB": N_("Husband"),
    "DOMPART": N_("Partner"),
    "SIS": N_("Sister"),
    "BRO": N_("Brother"),
    "SIB": N_("Sibling"),
    "GRMTH": N_("Grandmother"),
    "GRFTH": N_("Grandfather"),
    "GRNDDAU": N_("Granddaughter"),
    "GRNDSON": N_("Grandson"),
    "GRNDCHILD": N_("Grandchild"),
    "NIECE": N_("Niece"),
    "NEPHEW": N_("Nephew"),
    "AUNT": N_("Aunt"),
    "UNCLE": N_("Uncle"),
    "COUSN": N_("Cousin"),
    "DAUINLAW": N_("Daughter-in-law"),
    "SONINLAW": N_("Son-in-law"),
    "FAMMEMB": N_("Family member"),
    "FRND": N_("Friend"),
    "NBOR": N_("Neighbour"),
    "ROOM": N_("Roommate"),
    # v2-0063
    "PAR": N_("Parent"),
    "GRD": N_("Guardian"),
    "SPO": N_("Spouse"),
    "CHD": N_("Child"),
}
# v2-0131 contact roles (and the v3 RoleClass ones): who to call, not who they are.
ROLES: dict[str, str] = {
    "N": N_("Next of kin"),
    "NOK": N_("Next of kin"),
    "C": N_("Emergency contact"),
    "ECON": N_("Emergency contact"),
    "CP": N_("Contact person"),
    "E": N_("Employer"),
    "EP": N_("Employer"),
    "O": N_("Other"),
    "U": N_("Unknown"),
}


class HandRelationship(StrEnum):
    """What a coordinator picks when adding a contact by hand: v3 RoleCode codes, stored as they are."""

    DAU = "DAU"
    SON = "SON"
    WIFE = "WIFE"
    HUSB = "HUSB"
    MTH = "MTH"
    FTH = "FTH"
    GUARD = "GUARD"
    SIS = "SIS"
    BRO = "BRO"
    GRNDDAU = "GRNDDAU"
    GRNDSON = "GRNDSON"
    GRMTH = "GRMTH"
    GRFTH = "GRFTH"
    NIECE = "NIECE"
    NEPHEW = "NEPHEW"
    AUNT = "AUNT"
    UNCLE = "UNCLE"
    FAMMEMB = "FAMMEMB"
    FRND = "FRND"
    NBOR = "NBOR"


# People who are not family: reaching them does not end a search for relatives.
NOT_FAMILY = frozenset({"FRND", "NBOR", "ROOM"})
# Kinship words as EHRs type them in ``text`` ("nephew", "Daughter"), English and Russian.
_WORDS: dict[str, str] = {label.casefold(): code for code, label in KINSHIP.items() if code not in ("PAR", "GRD")}
_WORDS |= {
    "neighbor": "NBOR",
    "мать": "MTH", "мама": "MTH", "отец": "FTH", "папа": "FTH", "опекун": "GUARD", "дочь": "DAU", "сын": "SON",
    "жена": "WIFE", "муж": "HUSB", "сестра": "SIS", "брат": "BRO", "бабушка": "GRMTH", "дедушка": "GRFTH",
    "внучка": "GRNDDAU", "внук": "GRNDSON", "племянница": "NIECE", "племянник": "NEPHEW", "тётя": "AUNT",
    "тетя": "AUNT", "дядя": "UNCLE", "соседка": "NBOR", "сосед": "NBOR", "друг": "FRND", "подруга": "FRND",
}  # fmt: skip


class Relationship(NamedTuple):
    code: str  # the kinship code (KINSHIP), else the role code (ROLES), else ""
    label: str  # English: a message id of KINSHIP / ROLES, or the EHR's own words
    role: str = ""  # a v2-0131 role shown beside the kinship ("Next of kin"), when both are known
    codes: tuple[Code, ...] = ()  # every coding sent, for the mapping's guardian test


def read(value: Any) -> Relationship:
    """The relationship of a RelatedPerson or a Patient.contact (a list of CodeableConcepts)."""
    found = tuple(codes(value))
    words = [
        text(item.get("text")) for item in (value if isinstance(value, list) else [value]) if isinstance(item, dict)
    ]
    words = [w for w in words if w]
    kin = next((c.code for c in found if c.code in KINSHIP), None)
    if kin is None:
        kin = next((_WORDS[w.casefold()] for w in words if w.casefold() in _WORDS), None)
    role = next((c.code for c in found if c.code in ROLES), None)
    if kin is not None:
        return Relationship(kin, KINSHIP[kin], ROLES[role] if role else "", found)
    if role is not None:
        return Relationship(role, words[0] if words else ROLES[role], ROLES[role] if words else "", found)
    shown = words[0] if words else next((c.display for c in found if c.display), "")
    return Relationship("", shown or next((c.code for c in found), ""), "", found)


def of_code(code: str) -> Relationship:
    """A hand-added contact's relationship (a HandRelationship code)."""
    return Relationship(code, KINSHIP.get(code, code), "", (Code(V3_ROLE_CODE, code),))


def is_family(relationship: Relationship) -> bool:
    return relationship.code not in NOT_FAMILY
