"""MTV's random-heads control as a distribution: many head sets of the selected count, each scored on the same
test queries, so a reader sees where the selected heads fall among them (one draw cannot say whether selection
matters: on the shapes toy single draws range from chance to MTV's own accuracy)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn
from torchmetrics import Metric

from lit_tv.spread import format_rank, format_spread, rank_among, spread


def random_heads_like(selected: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """As many heads as `selected`, drawn uniformly at random from `generator`."""
    order = torch.randperm(selected.numel(), generator=generator)
    mask = torch.zeros(selected.numel(), dtype=torch.bool)
    mask[order[: int(selected.sum())]] = True
    return mask.view_as(selected).to(selected.device)


def control_seed(seed: int, tasks: Sequence[str]) -> int:
    """One generator seed per run seed and task set, so the draws differ per task and per seed, reproducibly."""
    digest = hashlib.sha256(f"random heads/{seed}/{','.join(tasks)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def random_head_sets(selected: torch.Tensor, count: int, seed: int, tasks: Sequence[str]) -> list[torch.Tensor]:
    """`count` random head sets of `selected`'s size for this run seed and these tasks."""
    generator = torch.Generator().manual_seed(control_seed(seed, tasks))
    return [random_heads_like(selected, generator) for _ in range(count)]


class RandomHeadsControl(nn.Module):
    """The control of one test run: its random head sets and one accuracy metric per set."""

    def __init__(
        self, selected: torch.Tensor, count: int, seed: int, tasks: Sequence[str], make_metric: Callable[[], Metric]
    ) -> None:
        super().__init__()
        self.head_sets = random_head_sets(selected, count, seed, tasks)
        self.heads = int(selected.sum())
        self.accuracy = nn.ModuleList([make_metric() for _ in self.head_sets])

    def update(self, answer: Callable[[torch.Tensor], list[str]], references: list[Sequence[str]]) -> None:
        """Score `answer(heads)` (the batch answered with those heads replaced) for every head set."""
        for heads, metric in zip(self.head_sets, self.metrics(), strict=True):
            metric.update(answer(heads), references)

    def metrics(self) -> list[Metric]:
        """The per-set metrics, typed (a ModuleList yields plain modules)."""
        return [cast(Metric, metric) for metric in self.accuracy]

    def accuracies(self) -> list[float]:
        return [float(metric.compute()) for metric in self.metrics()]

    def logged(self, selected: float) -> dict[str, float]:
        """The scalars to log under `test/random_heads/`: the draws' spread and where `selected` falls."""
        summary, rank = spread(self.accuracies()), rank_among(selected, self.accuracies())
        return {
            "accuracy": summary["mean"],
            **{f"accuracy_{key}": summary[key] for key in ("std", "min", "max")},
            "draws": float(rank["draws"]),
            "draws_below_selected": float(rank["above"]),
            "draws_tied": float(rank["tied"]),
        }

    def note(self, selected: float) -> str:
        """One printed line: the draws' spread, and e.g. ``the selected heads (0.967) above 20 of 20``."""
        draws = self.accuracies()
        return (
            f"random heads ({len(draws)} draws of {self.heads} heads): {format_spread(draws)}; "
            f"the selected heads ({selected:.3f}) {format_rank(rank_among(selected, draws))}"
        )
