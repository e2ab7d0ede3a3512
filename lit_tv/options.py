"""Checks of numeric options: a value that would make a run silently do nothing (or nonsense) stops it
before any data or weights load, with the option's name as the user writes it."""

from __future__ import annotations


def require_at_least(option: str, value: int | float | None, minimum: int, why: str = "") -> None:
    """`value` (None: unset, allowed) must be >= `minimum`; `why` says what a smaller one would break."""
    if value is not None and value < minimum:
        raise ValueError(f"{option} must be >= {minimum}, got {value}{f' ({why})' if why else ''}")
