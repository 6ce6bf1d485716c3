"""Password hashing in the test process: argon2id at its cheapest.

The service hashes with argon2-cffi's default parameters (64 MiB, 3 passes: about 0.25 s of CPU
per hash on the CI machine, by design). Hundreds of tests create users with passwords, so the
test process (conftest's ``pytest_configure``) swaps in ``profiles.CHEAPEST``: still argon2id,
still checked for real. Processes the tests start (servers, CLIs) hash as in production, and
data they are given to serve is hashed as in production (``production_hashing``), so they never
see a hash they would upgrade.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher, profiles

from discharge_bridge.users import service

CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)
PRODUCTION = service._hasher


def use_cheap_hashing() -> None:
    service._hasher = CHEAP


@contextmanager
def production_hashing() -> Iterator[None]:
    before, service._hasher = service._hasher, PRODUCTION
    try:
        yield
    finally:
        service._hasher = before
