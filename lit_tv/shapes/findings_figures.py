"""The findings' figures (and the cross-modal table as Markdown): plain numbers in, matplotlib figures out,
so the measuring code in lit_tv/shapes/findings.py stays apart from how it is drawn."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

from lit_tv.analysis.heatmap import head_heatmap
from lit_tv.files import atomic_path

CONTEXT_SHOTS = 7  # the toy was trained on sequences of at most 7 shots (lit_tv.shapes.train --max-shots)


def scaling_figure(
    icl: dict[int, float],
    mtv: dict[str, dict[int, float]],
    shots_per_episode: int = 4,
    context_shots: int = CONTEXT_SHOTS,
    context: str = "trained context",
    title: str = "",
) -> Figure:
    """ICL accuracy by shots (up to `context_shots`) beside MTV accuracy by support episodes (one curve each)."""
    figure = Figure(figsize=(9, 3.6))
    left, right = figure.subplots(1, 2, sharey=True)
    left.plot(list(icl), list(icl.values()), marker="o", label="ICL")
    left.axvline(context_shots, color="grey", linestyle=":", label=context)
    left.set(
        xlabel="shots in the prompt",
        ylabel="accuracy (mean over tasks)",
        title=f"in-context learning{title}",
        ylim=(0, 1.02),
    )
    for (label, curve), colour in zip(mtv.items(), ("tab:green", "tab:olive"), strict=False):
        right.plot(list(curve), list(curve.values()), marker="o", color=colour, label=label)
    right.axhline(max(icl.values()), color="tab:blue", linestyle="--", label="best ICL in context")
    episodes = sorted({n for curve in mtv.values() for n in curve})
    right.set(
        xscale="log", xlabel=f"support episodes in the mean ({shots_per_episode} shots each)", title=f"MTV{title}"
    )
    right.set_xticks(episodes, [str(n) for n in episodes], minor=False)
    right.minorticks_off()
    for axes in (left, right):
        axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def table_figure(table: dict[str, dict[str, float]]) -> Figure:
    """Grouped bars: one group per task (and the mean), one bar per setting."""
    settings, columns = list(table), list(next(iter(table.values())))
    figure = Figure(figsize=(10, 4))
    axes = figure.add_subplot()
    width = 0.8 / len(settings)
    for index, setting in enumerate(settings):
        positions = [column + (index - (len(settings) - 1) / 2) * width for column in range(len(columns))]
        axes.bar(positions, [table[setting][column] for column in columns], width, label=setting)
    axes.set_xticks(range(len(columns)), columns)
    axes.set(ylabel="accuracy on image queries", ylim=(0, 1.02), title="cross-modal task vectors (shapes toy)")
    axes.legend(fontsize="small", ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return figure


def markdown_table(table: dict[str, dict[str, float]]) -> str:
    columns = list(next(iter(table.values())))
    lines = ["| setting | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [
        f"| {setting} | " + " | ".join(f"{row[column]:.3f}" for column in columns) + " |"
        for setting, row in table.items()
    ]
    return "\n".join(lines)


def efficiency_figure(curves: dict[str, dict[int, float]]) -> Figure:
    figure = Figure(figsize=(5, 3.6))
    axes = figure.add_subplot()
    for source, curve in curves.items():
        axes.plot(list(curve), list(curve.values()), marker="o", label=f"{source} vector")
    axes.set(
        xlabel="text examples per task behind the vector",
        ylabel="accuracy on image queries",
        ylim=(0, 1.02),
        title="sample efficiency",
    )
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def heads_figure(mtv: dict[str, torch.Tensor], fv: torch.Tensor, summary: dict[str, object]) -> Figure:
    counts = torch.stack(list(mtv.values())).sum(0).float()
    union = summary["all tasks"]
    return head_heatmap(
        counts,
        f"MTV vs FV heads: {union['both']} in both, Jaccard {union['jaccard']:.2f}",
        "tasks whose MTV uses it",
        fv,
        limits=(0, len(mtv)),
        marked="FV heads",
    )


def save(figure: Figure, name: str, out: Path, writer: SummaryWriter) -> Path:
    """The figure as `<out>/<name>.png` (written atomically) and as TensorBoard figure `findings/<name>`."""
    path = out / f"{name}.png"
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=90)
    writer.add_figure(f"findings/{name}", figure, 0)
    return path
