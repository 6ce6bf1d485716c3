"""Keyset paging: the next page starts after the last row shown, never at an OFFSET.

A sort is a list of keys (an SQL expression, its direction); NULLs sort last either way and the
last key must be unique (a row id), so "after this row" is exact. The cursor a page hands out is
the sort's name and the last row's id as URL-safe base64 JSON: opaque to a client, free of patient
data (names and dates are sort keys; a cursor travels in URLs), and refused (``InvalidCursor``)
when it was made for another sort or does not decode.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, tuple_

from discharge_bridge.validation import is_id


class InvalidCursor(ValueError):
    """The ``after`` value was not made by this list for this sort."""


@dataclass(frozen=True)
class Key:
    expression: Any  # an SQL column or expression
    descending: bool = False
    # A NOT NULL column: ordered without NULLS LAST, so PostgreSQL can walk a plain index backwards
    # for a descending key (DESC NULLS LAST matches no ascending index), and "after" needs no
    # "or NULL" branch.
    nullable: bool = True

    def ordered(self) -> Any:
        ordering = self.expression.desc() if self.descending else self.expression.asc()
        return ordering.nulls_last() if self.nullable else ordering

    def after(self, value: Any) -> ColumnElement[bool]:
        """Rows strictly after ``value`` on this key alone (NULLs come last)."""
        if value is None:
            return false()
        beyond = self.expression < value if self.descending else self.expression > value
        return or_(beyond, self.expression.is_(None)) if self.nullable else beyond

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


def bound(keys: list[Key], values: list[Any]) -> ColumnElement[bool] | None:
    """A condition implied by ``after(keys, values)`` that an index on the leading keys can seek to:
    ``(k1, k2) <= (v1, v2)`` over the longest run of leading NOT NULL keys of one direction (None if
    there is no such run). ``after`` alone is an OR of branches, which no planner turns into a range,
    so a deep page would read and drop every row before it."""
    run: list[tuple[Key, Any]] = []
    for key, value in zip(keys, values, strict=True):
        if key.nullable or value is None or key.descending != keys[0].descending:
            break
        run.append((key, value))
    if not run:
        return None
    if len(run) == 1:
        left, right = run[0][0].expression, run[0][1]
    else:
        left, right = tuple_(*(k.expression for k, _ in run)), tuple_(*(v for _, v in run))
    return left <= right if keys[0].descending else left >= right


def encode(sort: str, last_id: int) -> str:
    """The cursor after the row ``last_id``: the sort's name and the row's id, nothing about the patient
    (a cursor travels in URLs); the row's key values are read again when the next page is asked for."""
    raw = json.dumps([sort, last_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, sort: str) -> int:
    """The row id in ``cursor``; ``InvalidCursor`` unless it was made for ``sort``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, last_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor("not a cursor this list made") from None
    if made_for != sort:
        raise InvalidCursor(f"made for another sort than {sort!r}")
    if not is_id(last_id):  # an int beyond 64 bits would reach the database
        raise InvalidCursor("not a row of this list")
    return last_id


TOTAL_CAP = 1000  # a list's total is exact up to here; beyond, "1,000+" (``total_more`` in its page)


def capped_total(session: Any, ids: Any) -> int:
    """The rows of the select ``ids`` counted up to one past ``TOTAL_CAP``: counting all of 100,000
    matching rows on every page costs as much as the page itself, and "1,000+" says enough."""
    matching = ids.limit(TOTAL_CAP + 1).subquery()
    return int(session.execute(select(func.count()).select_from(matching)).scalar_one())
