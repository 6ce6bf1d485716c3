"""One definition of a status lifecycle, shared by cases, tasks and handoffs (and referrals to come).

A table says, for each status, where it may go next, in the order a page offers the moves
(forward first, then the ways out). A status with nowhere to go is final; the others are active.
Every check and every list of "allowed next" comes from the table, so the services, the API's
``allowed_transitions`` and the page's buttons cannot disagree.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, TypeVar

from discharge_bridge.cases.errors import InvalidTransition

S = TypeVar("S", bound=StrEnum)


class Transitions(Generic[S]):
    """The allowed moves between the values of one status enum."""

    def __init__(self, status: type[S], table: Mapping[S, Sequence[S]]) -> None:
        missing = [s.value for s in status if s not in table]
        if missing:
            raise ValueError(f"{status.__name__}: no row for {', '.join(missing)}")
        self.status = status
        self.table: Mapping[S, tuple[S, ...]] = MappingProxyType({status(s): tuple(table[s]) for s in status})
        self.active: frozenset[S] = frozenset(s for s, nxt in self.table.items() if nxt)
        self.final: frozenset[S] = frozenset(self.table) - self.active

    def moves(self, current: S | str) -> tuple[S, ...]:
        """Where ``current`` may go, in the table's order (the order a page offers them)."""
        return self.table[self.status(current)]

    def allowed(self, current: S | str) -> list[S]:
        """Where ``current`` may go, sorted (the API's ``allowed_transitions``)."""
        return sorted(self.moves(current))

    def path(self, current: S | str, target: S | str) -> list[S]:
        """The shortest walk of allowed moves from ``current`` to ``target``, without ``current``
        (empty when there is none, or nothing to do): how a status another system jumped to is
        reached here one allowed step at a time, each step an event."""
        start, goal = self.status(current), self.status(target)
        walks: dict[S, list[S]] = {start: []}
        queue = deque([start])
        while queue:
            status = queue.popleft()
            if status == goal:
                return walks[status]
            for nxt in self.table[status]:
                if nxt not in walks:
                    walks[nxt] = [*walks[status], nxt]
                    queue.append(nxt)
        return []

    def check(self, what: str, current: S | str, target: S | str) -> None:
        """Raise InvalidTransition (naming the allowed next statuses) unless ``current -> target`` is allowed."""
        current, target = self.status(current), self.status(target)
        if target not in self.table[current]:
            raise InvalidTransition(what, current, target, self.table[current])
