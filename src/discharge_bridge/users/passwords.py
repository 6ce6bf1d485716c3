"""The rules a new password must pass: long enough, not a common one, not the user's own name.

``common-passwords.txt`` holds 6,437 of the most common passwords, lowercased: the first 5,000 of
the list Django ships (``django/contrib/auth/common-passwords.txt.gz``, 20,000 passwords from
breach corpora collected by Royce Williams, most frequent first), and every longer one (10+
characters) of the rest, which still matters when an operator lowers the minimum length.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

COMMON_PASSWORDS = Path(__file__).with_name("common-passwords.txt")


@cache
def common_passwords() -> frozenset[str]:
    return frozenset(line for line in COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines() if line)


def password_problem(password: str, *, username: str | None, min_length: int) -> str | None:
    """The first rule ``password`` breaks, in words that name it; None when it passes them all."""
    if len(password) < min_length:
        return f"the password must have at least {min_length} characters (this one has {len(password)})"
    folded = password.strip().casefold()
    if username and folded == username.strip().casefold():
        return "the password must not be the user name"
    if folded in common_passwords():
        return "the password is on the list of common passwords: choose another"
    return None
