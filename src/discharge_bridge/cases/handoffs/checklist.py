"""The documents checklist per destination type, from mappings/handoff_documents.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from discharge_bridge.cases.handoffs.models import DestinationType
from discharge_bridge.cases.mapping_files import load_yaml_model

DOCUMENTS_FILE = "handoff_documents.yaml"
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class DocumentsFile(BaseModel):
    """``documents``: code -> label; ``destinations``: destination type -> codes to gather."""

    model_config = ConfigDict(extra="forbid")
    documents: dict[Code, str]
    destinations: dict[DestinationType, list[Code]]

    @model_validator(mode="after")
    def _codes_are_catalogued(self) -> DocumentsFile:
        for destination, codes in self.destinations.items():
            unknown = [c for c in codes if c not in self.documents]
            if unknown:
                raise ValueError(
                    f"destinations.{destination} names {', '.join(unknown)}, which are not under `documents`"
                )
        return self

    def checklist(self, destination: DestinationType) -> list[dict[str, Any]]:
        """A fresh, unticked checklist; a destination the file does not list needs no documents."""
        return [
            {"code": code, "label": self.documents[code], "done": False, "done_at": None}
            for code in self.destinations.get(destination, [])
        ]


def load_documents(mappings_dir: Path) -> DocumentsFile:
    return load_yaml_model(mappings_dir / DOCUMENTS_FILE, DocumentsFile)
