"""t-SNE maps of task vectors, coloured by task and marked by how the task was specified."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.manifold import TSNE

MARKERS = "o^sDvP*X"


def tsne_2d(points: torch.Tensor, perplexity: float = 30.0) -> np.ndarray:
    """`[n, hidden]` → `[n, 2]`; the perplexity is lowered to fit few points (t-SNE needs it below n)."""
    if len(points) < 2:
        raise ValueError(f"t-SNE needs at least 2 vectors, got {len(points)}")
    perplexity = min(perplexity, max(1.0, (len(points) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, random_state=0).fit_transform(points.float().cpu().numpy())


def scatter_figure(coordinates: np.ndarray, tasks: Sequence[str], specifications: Sequence[str], title: str) -> Figure:
    """Colour = task, marker = specification (e.g. text / image exemplars, instruction)."""
    figure = Figure(figsize=(5, 4))
    axes = figure.add_subplot()
    colours = {task: f"C{index}" for index, task in enumerate(dict.fromkeys(tasks))}
    markers = {spec: MARKERS[index % len(MARKERS)] for index, spec in enumerate(dict.fromkeys(specifications))}
    for task in colours:
        for spec in markers:
            rows = [i for i, (t, s) in enumerate(zip(tasks, specifications, strict=True)) if (t, s) == (task, spec)]
            if rows:
                axes.scatter(
                    coordinates[rows, 0],
                    coordinates[rows, 1],
                    c=colours[task],
                    marker=markers[spec],
                    label=f"{task} / {spec}",
                    alpha=0.8,
                )
    axes.set(title=title, xticks=[], yticks=[])
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure
