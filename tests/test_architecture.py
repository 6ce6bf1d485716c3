"""The house keeps its floors: the import contracts in pyproject.toml hold, a deliberate upward
import is caught, and project imports sit at the top of modules unless a reason is written beside."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "discharge_bridge"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_LOCAL_IMPORTS = 5


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_import_contracts_hold() -> None:
    result = lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "src" / "discharge_bridge"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "static", "templates", "locale"))
    store = copy / "ingest" / "store.py"
    store.write_text(store.read_text() + "\nfrom discharge_bridge.cases.models import Case  # noqa: E402\n")
    result = lint_imports(tmp_path / "src")
    assert result.returncode == 1
    assert "discharge_bridge.ingest.store -> discharge_bridge.cases.models" in " ".join(result.stdout.split())
    assert "Ingest stores what arrived and never calls a stage above it BROKEN" in " ".join(result.stdout.split())


def _local_project_imports() -> list[tuple[str, int, bool]]:
    """(module path, line, has a reason) of every project import made inside a function or class."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("discharge_bridge"):
                        here, above = lines[inner.lineno - 1], lines[inner.lineno - 2]
                        reason = "#" in here or above.strip().startswith("#")
                        found.append((str(path.relative_to(PACKAGE)), inner.lineno, reason))
    return found


def test_project_imports_sit_at_the_top_of_modules() -> None:
    local = _local_project_imports()
    assert len(local) <= MAX_LOCAL_IMPORTS, local
    assert [f for f in local if not f[2]] == [], "a function-level import needs its reason written beside it"
