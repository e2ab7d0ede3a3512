"""A number over seeds (or draws) as its spread: mean, standard deviation, min and max, in one format everywhere."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min, max and count of `values`."""
    if not values:
        raise ValueError("a spread needs at least one value")
    values = [float(value) for value in values]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def format_spread(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± std (min–max)``: what a reader needs to judge one number measured several times."""
    summary = spread(values)
    return (
        f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f} "
        f"({summary['min']:.{digits}f}–{summary['max']:.{digits}f})"
    )


def rank_among(value: float, draws: Sequence[float]) -> dict[str, int]:
    """Where `value` falls among `draws`: how many it beats, how many it ties, of how many."""
    return {
        "above": sum(value > draw for draw in draws),
        "tied": sum(value == draw for draw in draws),
        "draws": len(draws),
    }


def format_rank(rank: dict[str, int]) -> str:
    """e.g. ``above 18 of 20 (2 tied)``."""
    tied = f" ({rank['tied']} tied)" if rank["tied"] else ""
    return f"above {rank['above']} of {rank['draws']}{tied}"


def by_seed(runs: Sequence[Any]) -> Any:
    """Results of the same shape, one per seed, as one: every leaf (a number, or a list such as random draws)
    becomes the list of its values in the runs' order, so each seed's number stays beside the others'."""
    if not runs:
        raise ValueError("by_seed needs at least one run")
    if isinstance(runs[0], dict):
        return {key: by_seed([run[key] for run in runs]) for key in runs[0]}
    return list(runs)


def on_seeds(holds: Sequence[bool]) -> str:
    """How many seeds a comparison held on: ``every seed`` or ``k of n seeds``, never a claim one seed made."""
    return "every seed" if all(holds) else f"{sum(holds)} of {len(holds)} seeds"
