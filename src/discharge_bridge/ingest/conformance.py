"""Check resources against the fhir.resources R4B models, for reporting only.

Full model validation runs at about 1.5k resources/s per core, ten times slower than the rest of
ingest, so it never gates a resource: a sample per type and pass is checked and its problems are
counted per source for hospital IT. Messages carry element paths and error kinds, never values
(the values are patient data).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from discharge_bridge.ingest.normalise import R4_RESOURCE_TYPES

_INDEX = re.compile(r"\.\d+(?=\.|$)")


def _path(loc: tuple[Any, ...]) -> str:
    text = ".".join(str(part) for part in loc if part != "__root__")
    return _INDEX.sub("[]", text) or "(resource)"


def problems(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, problem) pairs where the resource departs from FHIR R4 (R4B models; same elements).

    Never raises: a resource the models cannot even look at is one problem, not a failed page.
    """
    resource_type = resource.get("resourceType")
    try:
        # fhir.resources raises ValueError (not KeyError) for an unknown or missing type
        model = get_fhir_model_class(str(resource_type))
    except (KeyError, ValueError):
        return [("resourceType", "unknown resource type")]
    except Exception as exc:
        return [("resourceType", f"model lookup failed: {type(exc).__name__}")]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        found = []
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            found.append((_path(err["loc"]), f"{err['type']}: {err['msg']}"[:300]))
        return found
    except Exception as exc:  # validators in fhir.resources raise ValueError, TypeError, ... directly
        return [("(resource)", type(exc).__name__)]
    return []


class Sampler:
    """Validates the first ``limit`` resources of each type in one pass; counts the rest skipped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: Counter[str] = Counter()

    def check(self, resource: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
        """Problems of ``resource`` if it is in the sample. Never raises.

        A resource whose type is missing or not a FHIR type is skipped: it becomes a dead letter
        whose reason says so (and a junk type would not fit the issue table's column).
        """
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str) or resource_type not in R4_RESOURCE_TYPES:
            return []
        if self.seen[resource_type] >= self.limit:
            return []
        self.seen[resource_type] += 1
        rid = resource.get("id")
        rid = rid if isinstance(rid, str) and len(rid) <= 64 else None
        return [(resource_type, path, problem, rid) for path, problem in problems(resource)]
