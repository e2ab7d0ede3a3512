"""Representation evolution: how much of the logit lens's probability sits on named token sets, per layer.

Read on a query's last token, the mass typically moves from the input's tokens to tokens of the
task and finally to the answer's (Luo et al.); a task vector that works pulls that shift earlier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lit_tv.model.vlm import FrozenVLM


@torch.no_grad()
def token_set_mass(vlm: FrozenVLM, hidden: torch.Tensor, sets: Mapping[str, Sequence[int]]) -> torch.Tensor:
    """Logit-lens probability summed over each set of token ids → `[..., len(sets)]` for hidden `[..., hidden]`."""
    probabilities = vlm.logit_lens(hidden).softmax(-1)
    return torch.stack([probabilities[..., list(ids)].sum(-1) for ids in sets.values()], dim=-1)


def evolution_figure(mass: torch.Tensor, names: Sequence[str], title: str) -> Figure:
    """One line per token set over layers, from `mass` `[layers, sets]`."""
    figure = Figure(figsize=(5, 3.5))
    axes = figure.add_subplot()
    for column, name in enumerate(names):
        axes.plot(range(mass.shape[0]), mass[:, column].tolist(), marker="o", label=name)
    axes.set(xlabel="layer", ylabel="logit-lens probability", title=title, ylim=(0, 1))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    figure.tight_layout()
    return figure
