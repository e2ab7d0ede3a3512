"""Checks of options: a value that would make a run silently do nothing (or nonsense), or fail only at its end,
stops it before any data or weights load, with the option's name as the user writes it."""

from __future__ import annotations

import math
from pathlib import Path


def require_at_least(option: str, value: int | float | None, minimum: int, why: str = "") -> None:
    """`value` (None: unset, allowed) must be >= `minimum`; `why` says what a smaller one would break."""
    if value is not None and value < minimum:
        raise ValueError(f"{option} must be >= {minimum}, got {value}{f' ({why})' if why else ''}")


def require_between(option: str, value: int | None, low: int, high: int, why: str) -> None:
    """`value` (None: unset, allowed) must lie in [`low`, `high`]; `why` says where the range comes from."""
    if value is not None and not low <= value <= high:
        raise ValueError(f"{option} must be an integer from {low} to {high} ({why}) or null, got {value}")


def require_file_path(option: str, path: str | Path) -> None:
    """An output file's path, checked before the run's work: not a folder, and no file where a folder goes."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option}: {path} is a folder; give the path of a file in it")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{option}: {parent} is a file, not a folder, so {path} cannot be written")


def require_positive(option: str, value: float, why: str) -> None:
    """`value` must be a finite number above 0 (a step size: 0 changes nothing, a negative one or NaN is refused
    by the optimizer only once the long work before its first step is done)."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{option} must be a finite number above 0 ({why}), got {value}")
