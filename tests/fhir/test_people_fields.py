"""Names, phones, addresses and identifiers as EHRs send them (fhir.fields)."""

from __future__ import annotations

from discharge_bridge.fhir.fields import (
    Identifier,
    address_line,
    human_name,
    identifiers,
    phones,
    pick_identifier,
    search_key,
)


def test_the_official_name_wins_and_reads_family_first() -> None:
    names = [
        {"use": "nickname", "given": ["Masha"]},
        {"use": "official", "family": "Ivanova", "given": ["Maria", "Petrovna"]},
    ]
    assert human_name(names) == "Ivanova Maria Petrovna"


def test_a_name_text_is_used_as_sent_and_junk_reads_as_nothing() -> None:
    assert human_name([{"text": "  Olga Smirnova ", "family": "X"}]) == "Olga Smirnova"
    assert human_name({"family": "Orlov"}) == "Orlov"  # one HumanName where a list is due
    assert human_name([None, "Ivan", {"given": [None, ""]}]) == ""
    assert human_name(None) == ""


def test_phones_mobile_first_emails_skipped_duplicates_dropped() -> None:
    telecom = [
        {"system": "email", "value": "a@b.example"},
        {"system": "phone", "use": "work", "value": "+7 495 000-00-01"},
        {"system": "phone", "use": "mobile", "value": "+7 916 123-45-67"},
        {"system": "phone", "use": "home", "value": "+7 916 123-45-67"},
        {"value": "8 (495) 111-22-33"},  # no system: kept when it looks like a number
        {"value": "see notes"},
    ]
    assert phones(telecom) == ["+7 916 123-45-67", "8 (495) 111-22-33", "+7 495 000-00-01"]  # no use before work


def test_address_home_first_as_one_line() -> None:
    addresses = [
        {"use": "work", "text": "Office"},
        {"use": "home", "line": ["Lenina 5", "apt 12"], "city": "Moscow", "postalCode": "101000"},
    ]
    assert address_line(addresses) == "Lenina 5, apt 12, Moscow, 101000"
    assert address_line([{"use": "home"}]) == ""


def test_identifiers_keep_system_value_and_type_and_the_mrn_is_picked_by_system_or_type() -> None:
    found = identifiers(
        [
            {"system": "urn:oid:1.2.643.100.3", "value": "123-456-789 00"},
            {"type": {"coding": [{"code": "mr"}]}, "system": "http://h.example/mrn", "value": "MRN1"},
            {"system": "http://h.example/other", "value": ""},
            "junk",
        ]
    )
    assert found == [
        Identifier("urn:oid:1.2.643.100.3", "123-456-789 00", ""),
        Identifier("http://h.example/mrn", "MRN1", "MR"),
    ]
    assert pick_identifier(found, None) == "MRN1"
    assert pick_identifier(found, "urn:oid:1.2.643.100.3") == "123-456-789 00"
    assert pick_identifier(found, "http://nowhere.example") == ""


def test_search_key_folds_case_yo_and_spaces() -> None:
    assert search_key("  Семёнова   АННА ") == "семенова анна"  # noqa: RUF001
