"""Readable figures of per-head and per-layer numbers: a layer x head heatmap and a per-layer curve.

Both go to TensorBoard with `add_figure` (and to PNG with `savefig`): labelled axes, a colour scale,
and the heads a method selected marked, so a reader sees at a glance where a task vector lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # drawn only when logged: the methods (and the GPU benchmark) import without matplotlib
    from matplotlib.figure import Figure


def head_heatmap(
    cells: torch.Tensor,
    title: str,
    label: str,
    selected: torch.Tensor | None = None,
    limits: tuple[float, float] | None = None,
    diverging: bool = False,
    marked: str = "selected heads",
) -> Figure:
    """`[layers, heads]` values as a heatmap (rows are layers, layer 0 at the top), `selected` heads boxed.

    limits: the colour scale's range (default: the values' own); diverging: centred on 0 (for effects
    that can be negative, such as the AIE); marked: what the boxes are, for the title.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    values = cells.detach().float().cpu()
    layers, heads = values.shape
    if diverging and limits is None:
        bound = float(values.abs().max()) or 1.0
        limits = (-bound, bound)
    low, high = limits if limits is not None else (float(values.min()), float(values.max()))
    figure = Figure(figsize=(1.6 + 0.45 * heads, 1.2 + 0.4 * layers))
    axes = figure.add_subplot()
    image = axes.imshow(
        values.numpy(),
        cmap="RdBu_r" if diverging else "viridis",
        vmin=low,
        vmax=high,
        aspect="auto",
        interpolation="nearest",
    )
    figure.colorbar(image, ax=axes, label=label)
    if selected is not None:
        rows, columns = selected.detach().cpu().bool().nonzero(as_tuple=True)
        axes.scatter(
            columns.numpy(), rows.numpy(), marker="s", s=120, facecolors="none", edgecolors="red", linewidths=1.5
        )
        title = f"{title}\n{len(rows)} {marked} boxed"
    axes.set(xlabel="head", ylabel="layer", title=title)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    return figure


def layer_curve(values: Sequence[float], title: str, best: int | None = None) -> Figure:
    """One accuracy per layer as a line, the chosen layer (`best`) marked."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(5, 3.5))
    axes = figure.add_subplot()
    axes.plot(range(len(values)), list(values), marker="o")
    if best is not None:
        axes.axvline(best, color="red", linestyle="--", label=f"chosen layer {best}")
        axes.legend()
    axes.set(xlabel="layer", ylabel="accuracy", title=title, ylim=(0, 1.02))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    return figure
