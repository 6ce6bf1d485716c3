"""The catalogue of services delivered, from mappings/services_catalogue.yaml.

Each kind has a stable code, labels in English and Russian, the roles that may record it, and the
directory service categories whose referral, marked delivered by the receiver, records one of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from discharge_bridge.cases.mapping_files import load_yaml_model
from discharge_bridge.config import get_settings
from discharge_bridge.directory.models import ServiceCategory
from discharge_bridge.users.roles import Role

CATALOGUE_FILE = "services_catalogue.yaml"
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Kind(BaseModel):
    model_config = ConfigDict(extra="forbid")
    en: Label
    ru: Label
    roles: list[Role]
    categories: list[ServiceCategory] = []


class CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kinds: dict[Code, _Kind]


@dataclass(frozen=True)
class CatalogueEntry:
    code: str
    labels: dict[str, str]  # language -> label ("en", "ru")
    roles: tuple[Role, ...]
    categories: tuple[ServiceCategory, ...]

    def label(self, language: str) -> str:
        return self.labels.get(language) or self.labels["en"]

    def may_record(self, role: Role) -> bool:
        """An admin may record any kind; everyone else the kinds that name their role."""
        return role == Role.admin or role in self.roles


def catalogue(mappings_dir: Path | None = None) -> list[CatalogueEntry]:
    """The kinds in the file's order (``mappings_dir`` defaults to the setting's)."""
    folder = mappings_dir if mappings_dir is not None else get_settings().mappings_dir
    loaded = load_yaml_model(folder / CATALOGUE_FILE, CatalogueFile)
    return [
        CatalogueEntry(code, {"en": k.en, "ru": k.ru}, tuple(k.roles), tuple(k.categories))
        for code, k in loaded.kinds.items()
    ]


def entry_of(code: str, mappings_dir: Path | None = None) -> CatalogueEntry | None:
    return next((e for e in catalogue(mappings_dir) if e.code == code), None)


def kind_for_category(category: str, mappings_dir: Path | None = None) -> CatalogueEntry | None:
    """The kind a delivered referral of this service category records (the first the file ties to it)."""
    return next((e for e in catalogue(mappings_dir) if category in e.categories), None)
