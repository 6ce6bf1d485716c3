"""Loading the coordination files of mappings/ into pydantic models, with errors naming file and key."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from discharge_bridge.cases.errors import ConfigError
from discharge_bridge.risk.loading import cached_file

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M]) -> M:
    """``path`` validated as ``model``; raise ConfigError saying what to fix where.

    Kept by ``risk.loading`` while the file is unchanged: an edit takes effect without a restart,
    and a broken edit is reported at each use until it is fixed (errors are never cached).
    """
    return cached_file(path, lambda p: _read(p, model), model)


def _read(path: Path, model: type[M]) -> M:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing (copy it from the project's mappings/ folder)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
