"""Keyset paging: the next page starts after the last row shown, never at an OFFSET.

A sort is a list of keys (an SQL expression, its direction); NULLs sort last either way and the
last key must be unique (a row id), so "after this row" is exact. The cursor a page hands out is
the last row's key values, with the sort's name, as URL-safe base64 JSON: opaque to a client, and
refused (``InvalidCursor``) when it was made for another sort or does not decode.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_


class InvalidCursor(ValueError):
    """The ``after`` value was not made by this list for this sort."""


@dataclass(frozen=True)
class Key:
    expression: Any  # an SQL column or expression
    descending: bool = False
    kind: str = "text"  # "int", "text" or "datetime": how its value travels in the cursor

    def ordered(self) -> Any:
        ordering = self.expression.desc() if self.descending else self.expression.asc()
        return ordering.nulls_last()

    def after(self, value: Any) -> ColumnElement[bool]:
        """Rows strictly after ``value`` on this key alone (NULLs come last)."""
        if value is None:
            return false()
        beyond = self.expression < value if self.descending else self.expression > value
        return or_(beyond, self.expression.is_(None))

    def tie(self, value: Any) -> ColumnElement[bool]:
        return self.expression.is_(None) if value is None else self.expression == value


def order_by(keys: list[Key]) -> list[Any]:
    return [k.ordered() for k in keys]


def after(keys: list[Key], values: list[Any]) -> ColumnElement[bool]:
    """Rows after the one whose key values are ``values``: (k1 after) or (k1 tie and k2 after) or ..."""
    branches = []
    for index, key in enumerate(keys):
        ties = [k.tie(v) for k, v in zip(keys[:index], values[:index], strict=True)]
        branches.append(and_(*ties, key.after(values[index])))
    return or_(*branches)


def encode(sort: str, keys: list[Key], values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps([sort, plain], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, sort: str, keys: list[Key]) -> list[Any]:
    """The key values in ``cursor``; ``InvalidCursor`` unless it was made for ``sort`` with these keys."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, values = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor("not a cursor this list made") from None
    if made_for != sort or not isinstance(values, list) or len(values) != len(keys):
        raise InvalidCursor(f"made for another sort than {sort!r}")
    return [_value(key, value) for key, value in zip(keys, values, strict=True)]


def _value(key: Key, value: Any) -> Any:
    if value is None:
        return None
    if key.kind == "datetime" and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidCursor("a time in it does not parse") from None
        if parsed.tzinfo is None:
            raise InvalidCursor("a time in it has no zone")
        return parsed
    if key.kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if key.kind == "text" and isinstance(value, str):
        return value
    raise InvalidCursor("a value in it has the wrong type")
