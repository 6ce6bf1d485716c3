"""The one way in to the files of mappings/: the rule set, the hospitals' mappings, and (for cases)
the discharge dispositions and handoff checklists, each parsed once per version of its files.

A parsed value is reused until a file it was read from changes (its path, ``mtime_ns`` or size),
so an edit by hospital IT, or by a test, applies at the next call without a restart. Errors are
never cached: a broken edit is reported at every call until it is fixed, with the loader's own
error (``RuleSetError``, ``MappingError``, ``ConfigError``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from discharge_bridge.risk.mapping import Mapping, load_mapping
from discharge_bridge.risk.rules import RuleSet, load_rules

T = TypeVar("T")
Stamp = tuple[int, int]  # (st_mtime_ns, st_size)

_MAX_ENTRIES = 64  # a few mappings per deployment; tests make one folder each
_entries: OrderedDict[Hashable, tuple[Any, tuple[tuple[str, Stamp], ...]]] = OrderedDict()
_lock = threading.Lock()


def _stamp(path: str) -> Stamp | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def cached(key: Hashable, load: Callable[[], tuple[T, Iterable[str]]], known: Iterable[str] = ()) -> T:
    """``load()``'s value, kept under ``key`` while every file it was read from is unchanged.

    ``load`` returns the value and the paths of the files it read. ``known``: files it will read,
    when the caller can tell before loading. Those, and the files of the value being replaced, are
    stamped before the load: a file edited while it is being read leaves the new value uncached, so
    the next call reads the file again instead of keeping the half-old value.
    """
    with _lock:
        entry = _entries.get(key)
        if entry is not None:
            _entries.move_to_end(key)
    previous: tuple[tuple[str, Stamp], ...] = ()
    if entry is not None:
        kept, previous = entry
        if all(_stamp(path) == stamp for path, stamp in previous):
            return kept  # type: ignore[no-any-return]
    before = {path: _stamp(path) for path in {*known, *(path for path, _ in previous)}}
    value, files = load()
    fresh = [(path, _stamp(path)) for path in dict.fromkeys(files)]
    stamps = tuple((path, stamp) for path, stamp in fresh if stamp is not None and before.get(path, stamp) == stamp)
    if len(stamps) == len(fresh):  # every file is still there, and none changed while it was read
        with _lock:
            _entries[key] = (value, stamps)
            _entries.move_to_end(key)
            while len(_entries) > _MAX_ENTRIES:
                _entries.popitem(last=False)
    return value


def rule_set(mappings_dir: Path) -> RuleSet:
    """``<mappings_dir>/rules.yaml``; ``RuleSetError`` naming file, key and problem."""
    path = str(mappings_dir / "rules.yaml")

    def load() -> tuple[RuleSet, tuple[str, ...]]:
        rules = load_rules("rules", search_dir=mappings_dir)
        return rules, (rules.file,)

    return cached(("rules", path), load, (path,))


def mapping(name: str, mappings_dir: Path) -> Mapping:
    """The mapping ``name`` (a file of ``mappings_dir``, or a path) with the files it extends;
    ``MappingError`` naming file, key and problem. An edit of any file of the chain reloads it."""

    def load() -> tuple[Mapping, tuple[str, ...]]:
        found = load_mapping(name, search_dir=mappings_dir)
        return found, found.files

    return cached(("mapping", name, str(mappings_dir)), load, (str((mappings_dir / f"{name}.yaml").resolve()),))


def cached_file(path: Path, parse: Callable[[Path], T], kind: Hashable) -> T:
    """``parse(path)`` for a single-file value, reused while the file is unchanged; ``kind`` tells
    apart two readings of one file (a pydantic model class, say)."""
    file = str(path)
    return cached(("file", kind, file), lambda: (parse(path), (file,)), (file,))
