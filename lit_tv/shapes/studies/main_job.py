"""The main job on the shapes world, one table: zero-shot, 4-shot ICL, MTV and its random-heads control,
Function Vectors, and cross-modal vectors from text examples patched into image queries.

MTV is fitted once per task (one vector per task); the other methods compute their per-task vectors
in one run. Every row is scored on held-out test queries of the same objects, once per seed (`SEEDS`), and
printed as mean ± std (min–max) over the seeds; the random-heads control is every draw of every seed, and the
table says how many of its own seed's draws MTV beats.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from lit_tv.cli.app import LitTVCLI, build_cli
from lit_tv.console import lightning_warnings_only
from lit_tv.methods.checkpoints import checkpoint_folders
from lit_tv.shapes.world import TASKS
from lit_tv.spread import format_rank, format_spread, rank_among

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "shapes"
SEEDS = (0, 1, 2)  # each seed draws the data (support, training and test queries), REINFORCE and the random heads
RANDOM_HEADS = "random heads"
ROWS = ("zero-shot", "4-shot ICL", "MTV", RANDOM_HEADS, "function vec.", "text vec.->img")
# Methods that handle every task in one run (their vectors are per task): row -> config.
ALL_TASK_RUNS = {"function vec.": "function_vectors.yaml", "text vec.->img": "cross_modal.yaml"}
# their logger names and vector files (as in the configs), written under seed_<s>/ per seed
ALL_TASK_OUTPUTS = {
    "function_vectors.yaml": ("shapes_function_vectors", "function_vectors.safetensors"),
    "cross_modal.yaml": ("shapes_cross_modal", "task_vectors.safetensors"),
}
SEEDED_METHODS = {"function_vectors.yaml"}  # methods with a `seed` of their own (FV's label shuffles)


def seeded_options(seed: int) -> list[str]:
    """One seed's run: `seed_everything` (REINFORCE, random heads) and the data's seed."""
    return [f"--seed_everything={seed}", f"--data.init_args.seed={seed}"]


QUIET = ["--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def quiet_run(seed: int, **data: object) -> list[str]:
    """A run of one seed that writes no TensorBoard run and prints no bar or summary, with these DataModule
    options: the studies (many-shot, findings) print their own tables."""
    return [*QUIET, *seeded_options(seed), *(f"--data.init_args.{key}={value}" for key, value in data.items())]


def means_only(batch_size: int = 8) -> list[str]:
    """A fit's callbacks cut to the means: the configs' checkpoints would land in the shared logs/ folder."""
    means = (
        f"{{class_path: lit_tv.callbacks.mean_activations.MeanActivations, init_args: {{batch_size: {batch_size}}}}}"
    )
    return ["--trainer.enable_checkpointing=false", f"--trainer.callbacks=[{means}]"]


def test_metrics(cli: LitTVCLI) -> Mapping[str, float]:
    """`lit-tv test`'s logged metrics on the run's objects (fitted first, or not)."""
    return cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]


def run_test(config: str, options: list[str]) -> Mapping[str, float]:
    """`lit-tv test --config configs/shapes/<config> <options>`'s logged metrics."""
    return test_metrics(build_cli(CONFIGS / config, options))


def run_task(task: str, overrides: list[str], seed: int = 0) -> dict[str, object]:
    """Every row of the table for one task and seed; "random heads" holds every draw's accuracy."""
    only = [f"--data.init_args.tasks=[{task}]", *seeded_options(seed), *overrides]
    results: dict[str, object] = {}
    for shots, row in ((0, "zero-shot"), (4, "4-shot ICL")):
        results[row] = run_test("icl.yaml", [*only, f"--data.init_args.test_shots={shots}"])["test/accuracy"]
    mtv = build_cli(  # its TensorBoard run is the task's (shapes_mtv_{tasks}), one version per seed
        CONFIGS / "mtv.yaml",
        [
            *only,
            f"--trainer.logger.init_args.version=seed_{seed}",
            f"--model.init_args.export=logs/shapes_mtv_{task}/seed_{seed}/task_vector.safetensors",
            "--model.init_args.test_heads=random",  # the control is scored beside the selected heads
        ],
    )
    for callback in checkpoint_folders(mtv.trainer):  # each task and seed's fit resumes from its own checkpoints
        callback.dirpath = os.path.realpath(f"logs/shapes_mtv_{task}/seed_{seed}/checkpoints")
    mtv.trainer.fit(mtv.model, datamodule=mtv.datamodule)
    results["MTV"] = test_metrics(mtv)["test/accuracy"]
    results[RANDOM_HEADS] = mtv.model.random_control.accuracies()
    results["heads"] = float(mtv.model.selected_heads.sum())
    return results


def run_all_tasks(config: str, overrides: list[str], tasks: tuple[str, ...], seed: int = 0) -> dict[str, float]:
    """Accuracy per task of a method that computes one vector per task in a single test run."""
    seeded = [*seeded_options(seed), *([f"--model.init_args.seed={seed}"] if config in SEEDED_METHODS else [])]
    if config in ALL_TASK_OUTPUTS:  # each seed's run writes its own folder: no seed replaces another's
        name, vector = ALL_TASK_OUTPUTS[config]
        seeded += [
            f"--trainer.logger.init_args.version=seed_{seed}",
            f"--model.init_args.export=logs/{name}/seed_{seed}/{vector}",
        ]
    cli = build_cli(CONFIGS / config, [f"--data.init_args.tasks=[{','.join(tasks)}]", *seeded, *overrides])
    metrics = test_metrics(cli)
    return {task: metrics[f"test/accuracy/{task}"] for task in tasks}


def _values(runs: list[dict[str, dict]], task: str, row: str) -> list[float]:
    """One row's values for one task over the seeds (every draw of every seed for the random heads); task "mean":
    the mean over tasks per seed (and per draw)."""
    tasks = list(runs[0]) if task == "mean" else [task]
    per_seed = [[run[name][row] for name in tasks] for run in runs]
    if row == RANDOM_HEADS:
        return [sum(draws) / len(tasks) for run in per_seed for draws in zip(*run, strict=True)]
    return [sum(values) / len(tasks) for values in per_seed]


def _rank(runs: list[dict[str, dict]], task: str) -> str:
    """Where MTV falls among the random draws of its own seed, counted over the seeds (and tasks for "mean")."""
    tasks = list(runs[0]) if task == "mean" else [task]
    ranks = [rank_among(run[name]["MTV"], run[name][RANDOM_HEADS]) for run in runs for name in tasks]
    return format_rank({key: sum(rank[key] for rank in ranks) for key in ("above", "tied", "draws")})


def format_table(runs: list[dict[str, dict]]) -> str:
    """Every cell as mean ± std (min–max) over the seeds; the random heads over every draw of every seed."""
    columns = [*runs[0], "mean"]
    draws = len(next(iter(runs[0].values()))[RANDOM_HEADS])
    labels = {row: row for row in ROWS} | {RANDOM_HEADS: f"{RANDOM_HEADS} ({draws} draws)"}
    rows = [(labels[row], [format_spread(_values(runs, column, row), digits=2) for column in columns]) for row in ROWS]
    rows.append(("MTV vs the draws", [_rank(runs, column) for column in columns]))
    rows.append(("heads chosen", ["/".join(f"{run[task]['heads']:.0f}" for run in runs) for task in runs[0]]))
    width = max(len(label) for label, _ in rows) + 2
    # every column as wide as its widest cell, two spaces apart
    widths = [
        max(len(column), *(len(cells[i]) for _, cells in rows if i < len(cells))) + 2
        for i, column in enumerate(columns)
    ]
    lines = [" " * width + "".join(f"{column:>{w}}" for column, w in zip(columns, widths, strict=True))]
    lines += [
        f"{label:<{width}}" + "".join(f"{cell:>{w}}" for cell, w in zip(cells, widths, strict=False))
        for label, cells in rows
    ]
    return "\n".join(lines)


def run_main_job(
    overrides: list[str] | None = None, tasks: tuple[str, ...] = TASKS, seeds: tuple[int, ...] = SEEDS
) -> list[dict[str, dict]]:
    """Run the table on the held-out test queries of every task, once per seed; print it and return each seed's.
    An earlier main job's vectors and checkpoints are replaced only with ``--overwrite`` among the overrides
    (`lit-tv --overwrite`)."""
    overrides = ["--trainer.enable_model_summary=false", *(overrides or [])]  # theta's size, 18 times: no news
    runs = []
    with lightning_warnings_only():
        for seed in seeds:
            by_task = {task: run_task(task, overrides, seed) for task in tasks}
            for row, config in ALL_TASK_RUNS.items():
                for task, accuracy in run_all_tasks(config, overrides, tasks, seed).items():
                    by_task[task][row] = accuracy
            runs.append(by_task)
    print(
        "\nshapes world, accuracy on held-out test queries (lit_tv/shapes-toy), "
        f"mean ± std (min–max) over seeds {', '.join(map(str, seeds))}\n" + format_table(runs)
    )
    return runs
