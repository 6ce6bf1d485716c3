"""Mappings: how a source's FHIR data proves each concept (see mappings/README.md).

A mapping file is validated on its own (so an error names the file that holds it), then merged
onto the file it `extends`. A broken file raises `MappingError` naming the file, the key path and
what is wrong; nothing is cached between calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models as fhirpath_models
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from discharge_bridge.risk.codes import ANY_SYSTEM, BUILTIN_SYSTEMS, CodeSet, CodeSets
from discharge_bridge.risk.fhirpath_syntax import fhirpath_syntax_error

DEFAULT_MAPPINGS_DIR = Path(__file__).resolve().parents[3] / "mappings"
CONCEPT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
FhirPathResource = Literal["Patient", "Encounter", "Observation", "Condition", "RelatedPerson"]


class MappingError(ValueError):
    """A mapping file that cannot be used: `file: key.path: what is wrong`."""

    def __init__(self, file: Path | str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = str(file), key, problem
        super().__init__(f"{file}: {key or '(top level)'}: {problem}")


# --- the file format ------------------------------------------------------------------------

# A text people read (a concept's, a rule's) in one or more languages. A plain string is English;
# ``{en: ..., ru: ...}`` gives each language its words (English is required: it is what the API and
# the terminal show); ``text_ru`` beside a plain ``text`` says the same as ``{en: text, ru: text_ru}``.
LANGUAGE = re.compile(r"^[a-z]{2}$")
Texts = dict[str, str]


def read_texts(text: str | dict[str, str] | None, text_ru: str | None = None) -> Texts:
    """The language -> words table of a ``text`` (and ``text_ru``) as written; empty when none is given."""
    found: Texts = {"en": text} if isinstance(text, str) else dict(text or {})
    if text_ru is not None:
        found["ru"] = text_ru
    return found


def check_texts(text: str | dict[str, str] | None, text_ru: str | None) -> None:
    """Refuse a text table without English, with a language code that is not two letters, or empty words."""
    if isinstance(text, dict):
        for language, words in text.items():
            if not LANGUAGE.match(language):
                raise ValueError(f"text: {language!r} is not a two-letter language code (en, ru)")
            if not words.strip():
                raise ValueError(f"text.{language} is empty")
        if "en" not in text:
            raise ValueError("text needs its English words (en); the other languages are optional")
        if text_ru is not None and "ru" in text:
            raise ValueError("give the Russian text once: in text.ru or in text_ru")
    if text_ru is not None and not text_ru.strip():
        raise ValueError("text_ru is empty")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _str_list(value: Any) -> Any:
    """YAML reads SNOMED and LOINC codes as ints when unquoted; codes are strings."""
    if isinstance(value, str | int):
        value = [value]
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


class CodeSetSpec(_Spec):
    system: str | list[str]
    codes: list[str] = []
    prefixes: list[str] = []

    _norm = field_validator("codes", "prefixes", mode="before")(_str_list)

    @field_validator("system")
    @classmethod
    def _known_system(cls, value: str | list[str], info: ValidationInfo) -> str | list[str]:
        aliases = (info.context or {}).get("systems", BUILTIN_SYSTEMS)
        for item in [value] if isinstance(value, str) else value:
            if item != ANY_SYSTEM and ":" not in item and item not in aliases:
                known = ", ".join(sorted(aliases))
                raise ValueError(f"unknown system alias {item!r}; use a full URI or one of: {known}")
        return value

    @model_validator(mode="after")
    def _some_code(self) -> CodeSetSpec:
        if not self.codes and not self.prefixes:
            raise ValueError("give `codes` or `prefixes` (or both)")
        return self


def _code_sets(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class ObservationSpec(_Spec):
    """An Observation proves the concept when its code matches and its value passes every test given."""

    code: list[CodeSetSpec] = []
    value_codes: list[CodeSetSpec] = []
    value_min: float | None = None
    value_max: float | None = None
    value_boolean: bool | None = None

    _one = field_validator("code", "value_codes", mode="before")(_code_sets)

    @model_validator(mode="after")
    def _not_everything(self) -> ObservationSpec:
        has_value = self.value_codes or self.value_boolean is not None or self.value_min is not None
        if not self.code and not has_value and self.value_max is None:
            raise ValueError("give `code` and/or a value test (value_codes, value_min, value_max, value_boolean)")
        return self


class ExtensionSpec(_Spec):
    """An extension (by url) whose value passes the test given proves the concept."""

    url: str
    value_boolean: bool | None = None
    value_codes: list[CodeSetSpec] = []
    value_string: str | None = None
    value_min: float | None = None

    _one = field_validator("value_codes", mode="before")(_code_sets)

    @model_validator(mode="after")
    def _some_value(self) -> ExtensionSpec:
        tests = (self.value_boolean, self.value_string, self.value_min)
        if not self.value_codes and all(t is None for t in tests):
            raise ValueError("say which value proves it: value_boolean, value_codes, value_string or value_min")
        return self


class FhirPathSpec(_Spec):
    resource: FhirPathResource
    expression: str
    text: str | dict[str, str] | None = None
    text_ru: str | None = None

    @model_validator(mode="after")
    def _texts(self) -> FhirPathSpec:
        check_texts(self.text, self.text_ru)
        return self

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        problem = fhirpath_syntax_error(value)
        if problem:
            raise ValueError(f"FHIRPath does not parse: {problem}")
        return value


class ConceptSpec(_Spec):
    text: str | dict[str, str] | None = None
    text_ru: str | None = None
    enabled: bool = True
    replace: bool = False
    conditions: list[CodeSetSpec] = []
    observations: list[ObservationSpec] = []
    patient_extensions: list[ExtensionSpec] = []
    encounter_extensions: list[ExtensionSpec] = []
    fhirpath: list[FhirPathSpec] = []

    @model_validator(mode="after")
    def _texts(self) -> ConceptSpec:
        check_texts(self.text, self.text_ru)
        return self


class EncountersSpec(_Spec):
    inpatient_classes: list[str] = ["IMP", "ACUTE", "NONAC"]
    current_statuses: list[str] = ["in-progress", "arrived", "onleave"]
    emergency_classes: list[str] = ["EMER"]
    emergency_admit_sources: list[str] = ["emd"]
    emergency_priorities: list[str] = ["EM", "UR"]
    readmission_days: int = 30
    # One stay in several Encounters (risk/stays.py): an inpatient Encounter that starts within this
    # many hours of another one's end continues it, when it came by transfer (these admit sources)
    # or the first one names no discharge disposition.
    transfer_gap_hours: float = 6.0
    transfer_admit_sources: list[str] = ["hosp-trans"]
    planned_end_extension: str = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate"


class AgesSpec(_Spec):
    elderly_from: int = 65
    child_under: int = 18


class IdentitySpec(_Spec):
    # Patient.identifier.system of the medical record number shown on the pages; without it, the
    # identifier typed MR (v2-0203) is the MRN.
    mrn_system: str | None = None


class MappingFileSpec(_Spec):
    extends: str | None = None
    description: str = ""
    systems: dict[str, str | list[str]] = {}
    encounters: EncountersSpec = EncountersSpec()
    ages: AgesSpec = AgesSpec()
    identity: IdentitySpec = IdentitySpec()
    guardian_relationships: list[CodeSetSpec] = []
    concepts: dict[str, ConceptSpec] = {}

    @field_validator("concepts")
    @classmethod
    def _names(cls, value: dict[str, ConceptSpec]) -> dict[str, ConceptSpec]:
        for name in value:
            if not CONCEPT_NAME.match(name):
                raise ValueError(f"concept name {name!r} must be lower_snake_case")
        return value


# --- the loaded mapping ---------------------------------------------------------------------

Compiled = Callable[[Any, Any], list[Any]]


@dataclass(frozen=True)
class ObservationRule:
    code: CodeSets
    value_codes: CodeSets
    value_min: float | None
    value_max: float | None
    value_boolean: bool | None


@dataclass(frozen=True)
class ExtensionRule:
    url: str
    value_boolean: bool | None
    value_codes: CodeSets
    value_string: str | None
    value_min: float | None


@dataclass(frozen=True)
class FhirPathRule:
    resource: str
    expression: str
    text: str | None
    evaluate: Compiled = field(repr=False, compare=False)
    texts: tuple[tuple[str, str], ...] = ()  # (language, words) of ``text`` in other languages


NO_CODES = CodeSets()


@dataclass(frozen=True)
class Concept:
    name: str
    text: str  # English: the words of reasons in the API and the terminal
    conditions: CodeSets = NO_CODES
    observations: tuple[ObservationRule, ...] = ()
    patient_extensions: tuple[ExtensionRule, ...] = ()
    encounter_extensions: tuple[ExtensionRule, ...] = ()
    fhirpath: tuple[FhirPathRule, ...] = ()
    texts: tuple[tuple[str, str], ...] = ()  # (language, words) of ``text`` in other languages

    def text_in(self, language: str) -> str:
        """The concept's words in ``language``; English where the mapping gives none in it."""
        return dict(self.texts).get(language, self.text)


@dataclass(frozen=True)
class Mapping:
    """A validated, merged mapping, ready for `extract_facts` and `is_flaggable`."""

    name: str
    files: tuple[str, ...]
    encounters: EncountersSpec
    ages: AgesSpec
    guardian_relationships: CodeSets
    concepts: dict[str, Concept]
    disabled: frozenset[str] = frozenset()
    identity: IdentitySpec = field(default_factory=IdentitySpec)

    # Case-folded once: every encounter test asks these (frozen dataclass; cached_property
    # writes the instance __dict__ directly, so it works here).
    @cached_property
    def inpatient_classes(self) -> frozenset[str]:
        return frozenset(c.upper() for c in self.encounters.inpatient_classes)

    @cached_property
    def current_statuses(self) -> frozenset[str]:
        return frozenset(s.lower() for s in self.encounters.current_statuses)


# --- loading --------------------------------------------------------------------------------


def _resolve(name_or_path: str, search_dir: Path, near: Path | None = None) -> Path:
    as_path = Path(name_or_path)
    if as_path.suffix in {".yaml", ".yml"} or "/" in name_or_path:
        candidates = [as_path] if as_path.is_absolute() or near is None else [near / as_path, as_path]
    else:
        dirs = [near, search_dir] if near is not None else [search_dir]
        candidates = [d / f"{name_or_path}.yaml" for d in dirs if d is not None]
    for path in candidates:
        if path.is_file():
            return path
    raise MappingError(candidates[0], "", f"mapping {name_or_path!r} not found")


def read_yaml(path: Path, error: Callable[[Path, str, str], Exception]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(path, "", f"cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise error(path, "", f"not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(path, "", "the file must be a mapping of keys (got a list or a scalar)")
    return data


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validate(path: Path, raw: dict[str, Any], systems: dict[str, Any]) -> MappingFileSpec:
    try:
        return MappingFileSpec.model_validate(raw, context={"systems": systems})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        raise MappingError(path, key_path(loc), first["msg"].removeprefix("Value error, ")) from exc


def _chain(name_or_path: str, search_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The file and the files it extends, base first."""
    chain: list[tuple[Path, dict[str, Any]]] = []
    path = _resolve(name_or_path, search_dir)
    while True:
        if any(p == path.resolve() for p, _ in chain):
            loop = " -> ".join(str(p) for p, _ in chain)
            raise MappingError(path, "extends", f"extends itself through {loop}")
        raw = read_yaml(path.resolve(), MappingError)
        chain.append((path.resolve(), raw))
        parent = raw.get("extends")
        if parent is None:
            break
        if not isinstance(parent, str) or not parent.strip():
            raise MappingError(path, "extends", "must be the name of another mapping file")
        path = _resolve(parent.strip(), search_dir, near=path.resolve().parent)
    return list(reversed(chain))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Sections merge key by key; a concept's lists are appended to unless it says `replace: true`."""
    out = dict(base)
    for key, value in over.items():
        if key == "concepts" and isinstance(value, dict):
            concepts = dict(out.get("concepts") or {})
            for name, spec in value.items():
                old = concepts.get(name)
                if not isinstance(spec, dict) or spec.get("replace") or not isinstance(old, dict):
                    concepts[name] = spec
                    continue
                merged = dict(old)
                for k, v in spec.items():
                    merged[k] = (old.get(k) or []) + v if isinstance(v, list) else v
                concepts[name] = _merge_texts(merged, old, spec)
            out["concepts"] = concepts
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    out.pop("extends", None)
    return out


def _merge_texts(merged: dict[str, Any], old: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A site's new English text drops the base's other languages (they said the old words); a site's
    ``text_ru`` alone translates the base's text."""
    if "text" in over and "text_ru" not in over:
        merged.pop("text_ru", None)
    elif "text_ru" in over and "text" not in over and isinstance(old.get("text"), dict):
        merged["text"] = {**old["text"], "ru": merged.pop("text_ru")}
    return merged


def _systems(raw_files: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    systems = dict(BUILTIN_SYSTEMS)
    for raw in raw_files:
        table = raw.get("systems")
        if isinstance(table, dict):
            for alias, uris in table.items():
                if isinstance(uris, str):
                    systems[str(alias)] = (uris,)
                elif isinstance(uris, list):
                    systems[str(alias)] = tuple(str(u) for u in uris)
    return systems


def load_mapping(name_or_path: str, *, search_dir: Path = DEFAULT_MAPPINGS_DIR) -> Mapping:
    """Load `<search_dir>/<name>.yaml` (or a path) and the files it extends; raise MappingError.

    Parsed at each call: the service asks ``risk.loading.mapping``, which keeps the parsed files
    until one of them changes.
    """
    chain = _chain(name_or_path, search_dir)
    systems = _systems([raw for _, raw in chain])
    merged: dict[str, Any] = {}
    for path, raw in chain:
        _validate(path, raw, systems)
        merged = _merge(merged, raw)
    top = chain[-1][0]
    spec = _validate(top, merged, systems)
    return _build(top.stem, tuple(str(p) for p, _ in chain), spec, systems)


def _code_set(spec: CodeSetSpec, systems: dict[str, tuple[str, ...]]) -> CodeSet:
    uris: list[str] = []
    for item in [spec.system] if isinstance(spec.system, str) else spec.system:
        uris.extend(systems.get(item, (item,)))
    return CodeSet.build(tuple(uris), spec.codes, spec.prefixes)


def _others(texts: Texts) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((language, words) for language, words in texts.items() if language != "en"))


def _build(name: str, files: tuple[str, ...], spec: MappingFileSpec, systems: dict[str, tuple[str, ...]]) -> Mapping:
    def sets(items: list[CodeSetSpec]) -> CodeSets:
        return CodeSets(_code_set(s, systems) for s in items)

    def ext(items: list[ExtensionSpec]) -> tuple[ExtensionRule, ...]:
        return tuple(
            ExtensionRule(e.url.strip(), e.value_boolean, sets(e.value_codes), e.value_string, e.value_min)
            for e in items
        )

    model = fhirpath_models["r4"]
    concepts: dict[str, Concept] = {}
    for cname, c in spec.concepts.items():
        if not c.enabled:
            continue
        texts = read_texts(c.text, c.text_ru)
        concepts[cname] = Concept(
            name=cname,
            text=texts.get("en") or cname.replace("_", " ").capitalize(),
            texts=_others(texts),
            conditions=sets(c.conditions),
            observations=tuple(
                ObservationRule(sets(o.code), sets(o.value_codes), o.value_min, o.value_max, o.value_boolean)
                for o in c.observations
            ),
            patient_extensions=ext(c.patient_extensions),
            encounter_extensions=ext(c.encounter_extensions),
            fhirpath=tuple(
                FhirPathRule(
                    f.resource,
                    f.expression,
                    read_texts(f.text).get("en"),
                    fhirpath_compile(f.expression, model),
                    _others(read_texts(f.text, f.text_ru)),
                )
                for f in c.fhirpath
            ),
        )
    return Mapping(
        name=name,
        files=files,
        encounters=spec.encounters,
        ages=spec.ages,
        guardian_relationships=sets(spec.guardian_relationships),
        concepts=concepts,
        disabled=frozenset(n for n, c in spec.concepts.items() if not c.enabled),
        identity=spec.identity,
    )
