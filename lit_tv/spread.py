"""A number over seeds (or draws) as its spread: mean, standard deviation, min and max, in one format everywhere."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


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
