"""The main job on the shapes world, one table: zero-shot, 4-shot ICL, MTV and its random-heads control,
Function Vectors, and cross-modal vectors from text examples patched into image queries.

MTV is fitted once per task (one vector per task); the other methods compute their per-task vectors
in one run. Every row is scored on held-out test queries of the same objects.
"""

from __future__ import annotations

import os
from pathlib import Path

from lit_tv.cli import LitTVCLI, build_cli
from lit_tv.console import lightning_warnings_only
from lit_tv.shapes.world import TASKS

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "shapes"
ROWS = ("zero-shot", "4-shot ICL", "MTV", "random heads", "function vec.", "text vec.->img")
# Methods that handle every task in one run (their vectors are per task): row -> config.
ALL_TASK_RUNS = {"function vec.": "function_vectors.yaml", "text vec.->img": "cross_modal.yaml"}


def _test_accuracy(cli: LitTVCLI) -> float:
    return cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]["test/accuracy"]


def run_task(task: str, overrides: list[str]) -> dict[str, float]:
    """Every row of the table for one task."""
    only = [f"--data.init_args.tasks=[{task}]", *overrides]
    results = {}
    for shots, row in ((0, "zero-shot"), (4, "4-shot ICL")):
        results[row] = _test_accuracy(build_cli(CONFIGS / "icl.yaml", [*only, f"--data.init_args.test_shots={shots}"]))
    mtv = build_cli(
        CONFIGS / "mtv.yaml",
        [
            *only,
            f"--trainer.logger.init_args.name=shapes_mtv_{task}",
            f"--model.init_args.export=logs/shapes_mtv_{task}/task_vector.safetensors",
        ],
    )
    for callback in mtv.trainer.checkpoint_callbacks:  # each task's fit resumes from its own checkpoints
        callback.dirpath = os.path.realpath(f"logs/shapes_mtv_{task}/checkpoints")
    mtv.trainer.fit(mtv.model, datamodule=mtv.datamodule)
    results["MTV"] = _test_accuracy(mtv)
    mtv.model.hparams.test_heads = "random"
    results["random heads"] = _test_accuracy(mtv)
    results["heads"] = float(mtv.model.selected_heads.sum())
    return results


def run_all_tasks(config: str, overrides: list[str], tasks: tuple[str, ...]) -> dict[str, float]:
    """Accuracy per task of a method that computes one vector per task in a single test run."""
    cli = build_cli(CONFIGS / config, [f"--data.init_args.tasks=[{','.join(tasks)}]", *overrides])
    metrics = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    return {task: metrics[f"test/accuracy/{task}"] for task in tasks}


def format_table(by_task: dict[str, dict[str, float]]) -> str:
    tasks = list(by_task)
    lines = [f"{'':<14}" + "".join(f"{task:>10}" for task in tasks) + f"{'mean':>10}"]
    for row in ROWS:
        values = [by_task[task][row] for task in tasks]
        lines.append(
            f"{row:<14}" + "".join(f"{value:>10.3f}" for value in values) + f"{sum(values) / len(values):>10.3f}"
        )
    lines.append(f"{'heads chosen':<14}" + "".join(f"{by_task[task]['heads']:>10.0f}" for task in tasks))
    return "\n".join(lines)


def run_main_job(overrides: list[str] | None = None, tasks: tuple[str, ...] = TASKS) -> dict[str, dict[str, float]]:
    """Run the table on the held-out test queries of every task; print it and return it. An earlier main job's
    vectors and checkpoints are replaced only with ``--overwrite`` among the overrides (`lit-tv --overwrite`)."""
    overrides = ["--trainer.enable_model_summary=false", *(overrides or [])]  # theta's size, 18 times: no news
    with lightning_warnings_only():
        by_task = {task: run_task(task, overrides) for task in tasks}
        for row, config in ALL_TASK_RUNS.items():
            for task, accuracy in run_all_tasks(config, overrides, tasks).items():
                by_task[task][row] = accuracy
    print("\nshapes world, accuracy on held-out test queries (lit_tv/shapes-toy)\n" + format_table(by_task))
    return by_task
