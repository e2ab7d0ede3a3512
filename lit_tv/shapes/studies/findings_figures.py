"""The findings' figures (and the cross-modal table as Markdown): plain numbers in, matplotlib figures out,
so the measuring code in lit_tv/shapes/studies/findings.py stays apart from how it is drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

from lit_tv.analysis.heatmap import head_heatmap
from lit_tv.files import atomic_path
from lit_tv.spread import format_spread, spread

# the sample-efficiency sources (lit_tv.methods.residual's `source`) as the figure and page name them
VECTOR_NAMES = {"exemplars": "exemplar vector", "ensemble": "ensemble with the instruction vector"}
CONTEXT_SHOTS = 7  # the toy was trained on sequences of at most 7 shots (lit_tv.shapes.train --max-shots)


Curve = Mapping[str, Sequence[float]]  # x (as findings.json's string key) -> the values at x, one per seed


def _columns(curve: Curve) -> tuple[list[int], list[Sequence[float]]]:
    return [int(key) for key in curve], list(curve.values())


def _spread_line(axes: Axes, xs: Sequence[int], columns: Sequence[Sequence[float]], label: str, colour: str) -> None:
    """Mean over seeds with ± std error bars and a min–max band; `columns[i]` holds every seed's value at xs[i]."""
    summaries = [spread(column) for column in columns]
    means = [summary["mean"] for summary in summaries]
    axes.errorbar(xs, means, yerr=[s["std"] for s in summaries], marker="o", capsize=3, color=colour, label=label)
    axes.fill_between(xs, [s["min"] for s in summaries], [s["max"] for s in summaries], color=colour, alpha=0.15)


def _level(axes: Axes, values: Sequence[float], label: str, colour: str, style: str) -> None:
    """A level that does not depend on x (zero-shot, random heads, a baseline): its mean as a line, its min–max
    over seeds (or draws) as a band."""
    level = spread(values)
    axes.axhspan(level["min"], level["max"], color=colour, alpha=0.1)
    axes.axhline(level["mean"], color=colour, linestyle=style, label=f"{label} (mean, band min–max)")


def _zero_shot_and_random(axes: Axes, zero_shot: Sequence[float], random_heads: Sequence[float]) -> None:
    _level(axes, zero_shot, "zero-shot", "black", ":")
    _level(axes, random_heads, "MTV, random heads", "tab:red", "--")


def _episodes_axis(axes: Axes, episodes: Sequence[int], shots_per_episode: int) -> None:
    axes.set(xscale="log", xlabel=f"support episodes in the mean ({shots_per_episode} shots each)")
    axes.set_xticks(list(episodes), [str(n) for n in episodes], minor=False)
    axes.minorticks_off()


def scaling_figure(
    icl: Curve, mtv: Curve, random_heads: Sequence[Sequence[float]], shots_per_episode: int = 4
) -> Figure:
    """ICL accuracy by shots beside MTV accuracy by support episodes, over seeds, with zero-shot and MTV's
    random-heads control (every draw of every seed) on both panels."""
    seeds = len(next(iter(icl.values())))
    figure = Figure(figsize=(10, 3.8))
    left, right = figure.subplots(1, 2, sharey=True)
    shots, icl_columns = _columns(icl)
    _spread_line(left, shots, icl_columns, "ICL", "tab:blue")
    left.axvline(CONTEXT_SHOTS, color="grey", linestyle=":", label="trained context")
    episodes, mtv_columns = _columns(mtv)
    _spread_line(right, episodes, mtv_columns, "MTV (0-shot queries)", "tab:green")
    best_icl = [max(run) for run in zip(*icl_columns, strict=True)]
    _level(right, best_icl, "best ICL in context", "tab:blue", "--")
    for axes in (left, right):
        _zero_shot_and_random(axes, icl_columns[shots.index(0)], [draw for run in random_heads for draw in run])
    left.set(xlabel="shots in the prompt", ylabel="accuracy (mean over tasks)", ylim=(0, 1.02))
    left.set_title(f"in-context learning ({seeds} seeds: mean ± std, band min–max)", fontsize="small")
    _episodes_axis(right, episodes, shots_per_episode)
    right.set_title(f"MTV, heads of a {max(episodes)}-episode fit ({len(random_heads)} seeds)", fontsize="small")
    for axes in (left, right):
        axes.legend(loc="lower right", fontsize="x-small")
    figure.tight_layout()
    return figure


def many_shot_figure(many: dict) -> Figure:
    """The many-shot family over seeds: ICL by shots (capped by the context) and MTV by support episodes, each
    with zero-shot and the random-heads draws as bands."""
    icl, mtv = many["icl"], many["mtv"]
    seeds = len(many["seeds"])
    figure = Figure(figsize=(10, 3.8))
    left, right = figure.subplots(1, 2, sharey=True)
    shots = icl[0]["shots"]
    _spread_line(left, shots, list(zip(*[run["accuracy"] for run in icl], strict=True)), "ICL", "tab:blue")
    left.axvline(shots[-1], color="grey", linestyle=":", label=f"context ({icl[0]['context']} tokens)")
    left.set_xticks(shots)
    episodes = mtv[0]["iterations"]
    for curve, label, colour in (
        ("searched", "MTV, heads searched per count", "tab:green"),
        ("fixed_heads", "MTV, heads kept, means recomputed", "tab:olive"),
    ):
        _spread_line(right, episodes, list(zip(*[run[curve] for run in mtv], strict=True)), label, colour)
    _level(right, [max(run["accuracy"]) for run in icl], "best ICL in context", "tab:blue", "--")
    for axes in (left, right):
        _zero_shot_and_random(
            axes, [run["zero_shot"] for run in mtv], [draw for run in mtv for draw in run["random_heads"]]
        )
    left.set(xlabel="shots in the prompt", ylabel="accuracy (mean over tasks)", ylim=(0, 1.02))
    left.set_title(f"ICL, many-shot family ({seeds} seeds: mean ± std, band min–max)", fontsize="small")
    _episodes_axis(right, episodes, mtv[0]["shots_per_iteration"])
    right.set_title("MTV (0-shot queries; head search on 100 labelled queries)", fontsize="small")
    for axes in (left, right):
        axes.legend(loc="lower right", fontsize="x-small")
    figure.tight_layout()
    return figure


def table_figure(table: Mapping[str, Curve]) -> Figure:
    """Grouped bars: one group per task (and the mean), one bar per setting; bar the mean over seeds, error bar
    ± std, whisker dots min and max."""
    settings, columns = list(table), list(next(iter(table.values())))
    seeds = len(next(iter(table[settings[0]].values())))
    figure = Figure(figsize=(10, 4))
    axes = figure.add_subplot()
    width = 0.8 / len(settings)
    for index, setting in enumerate(settings):
        positions = [column + (index - (len(settings) - 1) / 2) * width for column in range(len(columns))]
        summaries = [spread(table[setting][column]) for column in columns]
        bars = axes.bar(positions, [s["mean"] for s in summaries], width, label=setting)
        axes.errorbar(
            positions,
            [s["mean"] for s in summaries],
            yerr=[s["std"] for s in summaries],
            fmt="none",
            ecolor="black",
            capsize=2,
        )
        for bound in ("min", "max"):
            axes.scatter(
                positions,
                [s[bound] for s in summaries],
                s=6,
                color=bars.patches[0].get_facecolor(),
                edgecolors="black",
                linewidths=0.5,
                zorder=3,
            )
    axes.set_xticks(range(len(columns)), columns)
    axes.set(ylabel="accuracy on image queries", ylim=(0, 1.02))
    axes.set_title(
        f"cross-modal task vectors (shapes toy; {seeds} seeds: mean ± std, dots min and max)", fontsize="small"
    )
    axes.legend(fontsize="small", ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return figure


def markdown_table(table: Mapping[str, Curve]) -> str:
    """Every cell as mean ± std (min–max) over the seeds."""
    columns = list(next(iter(table.values())))
    lines = ["| setting | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [
        f"| {setting} | " + " | ".join(format_spread(row[column], digits=2) for column in columns) + " |"
        for setting, row in table.items()
    ]
    return "\n".join(lines)


def efficiency_figure(curves: Mapping[str, Curve], baselines: Mapping[str, Sequence[float]]) -> Figure:
    """Exemplar and ensemble vectors by examples over seeds, with levels for what needs no examples
    (`baselines`: the instruction vector alone, zero-shot)."""
    figure = Figure(figsize=(6, 3.8))
    axes = figure.add_subplot()
    for (source, curve), colour in zip(curves.items(), ("tab:purple", "tab:cyan"), strict=False):
        examples, columns = _columns(curve)
        _spread_line(axes, examples, columns, VECTOR_NAMES.get(source, source), colour)
        axes.set_xticks(examples)
    for (name, values), (colour, style) in zip(baselines.items(), (("tab:orange", "--"), ("black", ":")), strict=False):
        _level(axes, values, name, colour, style)
    seeds = len(next(iter(next(iter(curves.values())).values())))
    axes.set(xlabel="text examples per task behind the vector", ylabel="accuracy on image queries", ylim=(0, 1.02))
    axes.set_title(f"sample efficiency ({seeds} seeds: mean ± std, band min–max)", fontsize="small")
    axes.legend(loc="best", fontsize="x-small")
    figure.tight_layout()
    return figure


def heads_figure(mtv: Sequence[Mapping[str, torch.Tensor]], fv: Sequence[torch.Tensor], summary: Mapping) -> Figure:
    """How many (task, seed) fits use each head, the heads FV uses on any seed boxed; the title counts the heads in
    both against chance (the mean for random sets of these sizes) over the seeds."""
    counts = torch.stack([heads for fit in mtv for heads in fit.values()]).sum(0).float()
    union = summary["all tasks"]
    both, chance = union["both"], union["chance"]
    below = sum(b < c for b, c in zip(both, chance, strict=True))
    return head_heatmap(
        counts,
        f"MTV vs FV heads, {len(fv)} seeds\nin both {format_spread(both, digits=1)}\n"
        f"chance {format_spread(chance, digits=1)}\nbelow chance on {below} of {len(fv)} seeds",
        "MTV fits using it",
        torch.stack(list(fv)).any(0),
        limits=(0, float(sum(len(fit) for fit in mtv))),
        marked="FV heads (any seed)",
    )


def save(figure: Figure, name: str, out: Path, writer: SummaryWriter) -> None:
    """The figure as `<out>/<name>.png` (written atomically) and as TensorBoard figure `findings/<name>`."""
    path = out / f"{name}.png"
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=90)
    writer.add_figure(f"findings/{name}", figure, 0)
