"""The many-shot family and its toy: ICL accuracy vs shots (capped by the context) and MTV vs iterations.

``python -m lit_tv.shapes.studies.many_shot [--seeds 0 1 2]`` measures both on the shipped many-shot toy, once
per seed, and prints the table (mean ± std (min–max) over the seeds) and what held on every seed. In this
family 45% of the shots answer another attribute of their own object (`MANY_SHOT_DISTRACTORS`), so the task
is only a majority among the shots, and the toy's context holds 4 image shots: ICL cannot see enough of them.
MTV averages head activations over many 4-shot support episodes (its iterations) and patches them into
zero-shot queries; its head search also scores 100 labelled zero-shot training queries, which ICL never
sees. Every number is a `lit-tv test` / `lit-tv fit` run of configs/shapes/icl_many_shot.yaml or
mtv_many_shot.yaml with options changed (`lit_tv.cli.app.build_cli`), and the functions return plain numbers,
for the findings figures.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import torch
import transformers
from transformers import AutoConfig

from lit_tv.cli.app import LitTVCLI, build_cli
from lit_tv.console import lightning_warnings_only, quiet_libraries
from lit_tv.model.loading import resolve_model_path
from lit_tv.shapes.studies.main_job import CONFIGS, means_only, quiet_run, run_test, test_metrics
from lit_tv.shapes.toy import max_image_shots
from lit_tv.shapes.world import TASKS
from lit_tv.spread import format_spread, on_seeds

CHECKPOINT = Path(__file__).parents[1] / "checkpoint_many_shot"
MODEL = "lit_tv/shapes-toy-many-shot"
ITERATIONS: tuple[int, ...] = (1, 4, 16, 100)
SEEDS: tuple[int, ...] = (0, 1, 2)
REINFORCE_QUERIES = 100  # labelled zero-shot training queries per task that MTV's head search scores
ICL_CONFIG, MTV_CONFIG = "icl_many_shot.yaml", "mtv_many_shot.yaml"
# the MTV runs write no checkpoint or vector into logs/ (the config's batch of 16 for the means kept); the
# kept-heads tests read the vector of the fit with the most episodes from a folder of their own
MTV_RUN = [*means_only(16), "--model.init_args.export=null"]


def context_shots(model: str = MODEL) -> tuple[int, int]:
    """The model's context in tokens and how many image shots (plus the query) fit in it."""
    context = AutoConfig.from_pretrained(resolve_model_path(model)).get_text_config().max_position_embeddings
    return context, max_image_shots(context)


def _run(model: str, seed: int, **data: object) -> list[str]:
    return [*quiet_run(seed, **data), f"--model.init_args.model.name={model}"]


def _accuracy(config: str, options: list[str]) -> float:
    return run_test(config, options)["test/accuracy"]


def accuracy_vs_shots(model: str = MODEL, queries: int = 150, seed: int = 0) -> dict:
    """Held-out ICL accuracy (first answer token, all three tasks) for 0 up to the most shots that fit.

    Returns ``{"shots": [...], "accuracy": [...], "context": tokens}``.
    """
    context, most = context_shots(model)
    shots = list(range(most + 1))
    accuracy = [_accuracy(ICL_CONFIG, _run(model, seed, test_shots=k, test_size=queries * len(TASKS))) for k in shots]
    return {"shots": shots, "accuracy": accuracy, "context": context}


def _fit(options: list[str], count: int, steps: int, *extra: str) -> LitTVCLI:
    """`lit-tv fit` of MTV for one task: means over `count` support episodes, `steps` REINFORCE steps."""
    fit = build_cli(
        CONFIGS / MTV_CONFIG,
        [*options, f"--data.init_args.support_size={count}", f"--trainer.max_steps={steps}", *extra],
    )
    fit.trainer.fit(fit.model, datamodule=fit.datamodule)
    return fit


def _kept_heads(options: list[str], vector: Path, count: int, draws: int) -> float:
    """`lit-tv test` accuracy with `vector`'s heads and the means recomputed over `count` support episodes
    (`transfer: heads`), averaged over `draws` disjoint draws (the first `count` episodes, the next `count`, ...)."""
    kept = [
        *options,
        f"--model.init_args.task_vector={vector}",
        "--model.init_args.transfer=heads",
        f"--data.init_args.support_size={count}",
    ]
    skips = (f"--data.init_args.support_skip={draw * count}" for draw in range(draws))
    return sum(_accuracy(MTV_CONFIG, [*kept, skip]) for skip in skips) / draws


def accuracy_vs_iterations(
    model: str = MODEL,
    iterations: Sequence[int] = ITERATIONS,
    steps: int = 40,
    samples: int = 32,
    queries: int = 150,
    draws: int = 3,
    seed: int = 0,
) -> dict:
    """MTV held-out accuracy with means over each number of 4-shot support episodes (iterations), per task.

    Two curves, means over tasks: ``searched``, the whole method per count (means, a REINFORCE head
    search of `steps` steps on labelled zero-shot training queries, zero-shot test queries, the same
    for every count); ``fixed_heads``, the heads searched with the largest count kept and only the means
    recomputed over fewer episodes (`_kept_heads`, averaged over `draws` disjoint draws), which shows what the
    means themselves carry. Also the zero-shot baseline and, for the largest count, the random-heads control
    (`test_heads: random`): ``random_heads``, each draw's accuracy (mean over tasks; as many heads, drawn at
    random per task). ``per_task`` holds each task's two curves.
    """
    iterations = sorted(iterations)
    _, shots = context_shots(model)
    per_task: dict[str, dict[str, list[float]]] = {}
    zero_shot, random_heads = [], []  # random_heads: per task, every draw's accuracy
    for task in TASKS:
        data = {"tasks": f"[{task}]", "test_size": queries}
        options = [
            *_run(model, seed, **data, shots=shots, train_size=REINFORCE_QUERIES),
            f"--model.init_args.samples={samples}",
            *MTV_RUN,
        ]
        with TemporaryDirectory() as folder:
            vector = Path(folder) / "task_vector.safetensors"
            searched = [test_metrics(_fit(options, count, steps))["test/accuracy"] for count in iterations[:-1]]
            last = _fit(
                options,
                iterations[-1],
                steps,
                f"--model.init_args.export={vector}",
                "--model.init_args.test_heads=random",
            )
            searched.append(test_metrics(last)["test/accuracy"])
            assert last.model.random_control is not None, "a random-heads test builds its control"
            random_heads.append(last.model.random_control.accuracies())
            fixed = [_kept_heads(options, vector, count, draws) for count in iterations[:-1]]
        per_task[task] = {"searched": searched, "fixed_heads": [*fixed, searched[-1]]}
        zero_shot.append(_accuracy(ICL_CONFIG, _run(model, seed, **data, test_shots=0)))

    def mean(curve: str) -> list[float]:
        return [sum(by[curve][i] for by in per_task.values()) / len(TASKS) for i in range(len(iterations))]

    return {
        "iterations": iterations,
        "searched": mean("searched"),
        "fixed_heads": mean("fixed_heads"),
        "per_task": per_task,
        "shots_per_iteration": shots,
        "reinforce_queries": REINFORCE_QUERIES,
        "steps": steps,
        "zero_shot": sum(zero_shot) / len(TASKS),
        "random_heads": [sum(draws) / len(TASKS) for draws in zip(*random_heads, strict=True)],
    }


def over_seeds(seeds: Sequence[int] = SEEDS, model: str = MODEL, queries: int = 150, **iterations_options: Any) -> dict:
    """`accuracy_vs_shots` and `accuracy_vs_iterations` once per seed (data, REINFORCE and random heads)."""
    return {
        "seeds": list(seeds),
        "icl": [accuracy_vs_shots(model, queries, seed) for seed in seeds],
        "mtv": [accuracy_vs_iterations(model, queries=queries, seed=seed, **iterations_options) for seed in seeds],
    }


def cell(values: Sequence[float]) -> str:
    """A table cell: mean ± std (min–max) to two digits."""
    return format_spread(values, digits=2)


def table(result: dict) -> str:
    """The many-shot table: one row per setting, held-out accuracy (mean over tasks) as mean ± std (min–max)
    over the seeds; the random heads over every draw of every seed."""
    icl, mtv = result["icl"], result["mtv"]
    last, draws = mtv[0]["iterations"][-1], len(mtv[0]["random_heads"])
    rows = [f"| 0-shot | {cell([run['zero_shot'] for run in mtv])} | |"]
    rows += [
        f"| ICL, {k} image shot{'s' * (k != 1)} | {cell([run['accuracy'][i] for run in icl])} | |"
        for i, k in enumerate(icl[0]["shots"])
        if k
    ]
    rows += [
        f"| MTV, means over {n} episode{'s' * (n != 1)} of {mtv[0]['shots_per_iteration']} shots | "
        f"{cell([run['searched'][i] for run in mtv])} | {cell([run['fixed_heads'][i] for run in mtv])} |"
        for i, n in enumerate(mtv[0]["iterations"])
    ]
    randoms = [draw for run in mtv for draw in run["random_heads"]]
    rows.append(
        f"| MTV, as many heads at random ({draws} draws per task and seed, {last} episodes) | {cell(randoms)} | |"
    )
    header = (
        f"| setting (context {icl[0]['context']} tokens; mean ± std (min–max) over seeds "
        f"{', '.join(map(str, result['seeds']))}) | held-out accuracy | "
        f"MTV with the heads of the {last}-episode row |\n|---|---|---|"
    )
    return "\n".join([header, *rows])


def claims(result: dict) -> list[str]:
    """What held on every seed and what did not, each comparison counted per seed."""
    icl, mtv = result["icl"], result["mtv"]
    best = [max(run["accuracy"]) for run in icl]
    last = [run["searched"][-1] for run in mtv]
    kept = [run["fixed_heads"] for run in mtv]
    first = mtv[0]
    return [
        f"What MTV saw that ICL did not: per task, its head search scored {first['reinforce_queries']} labelled "
        f"zero-shot training queries ({first['steps']} REINFORCE steps), and its means averaged up to "
        f"{first['iterations'][-1]} support episodes of {first['shots_per_iteration']} shots.",
        f"ICL with the most shots that fit ({icl[0]['shots'][-1]}) beats 1 shot on "
        f"{on_seeds([run['accuracy'][-1] > run['accuracy'][1] for run in icl])}.",
        f"MTV over {mtv[0]['iterations'][-1]} episodes beats the best ICL that fits on "
        f"{on_seeds([a > b for a, b in zip(last, best, strict=True)])}.",
        f"It beats every one of its seed's random head sets on {on_seeds([a > max(run['random_heads']) for a, run in zip(last, mtv, strict=True)])}.",  # noqa: E501
        f"With the heads kept, more episodes help at every step on "
        f"{on_seeds([all(a < b for a, b in zip(curve, curve[1:], strict=False)) for curve in kept])}, "
        f"from the fewest to the most on {on_seeds([curve[0] < curve[-1] for curve in kept])}.",
        f"A fresh head search with one episode's means is within 0.05 of the most episodes' on "
        f"{on_seeds([abs(run['searched'][0] - run['searched'][-1]) <= 0.05 for run in mtv])}.",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--queries", type=int, default=150, help="held-out queries per task")
    parser.add_argument("--steps", type=int, default=40, help="REINFORCE steps per MTV vector")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="seeds: data, REINFORCE, heads")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the least CPU time on a busy box)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet_libraries()  # a study's own argv beside its runs' args, Lightning's deprecation notes: not the user's
    transformers.utils.logging.disable_progress_bar()
    with lightning_warnings_only():  # one table, not a Trainer banner per run; the levels come back after
        result = over_seeds(args.seeds, args.model, args.queries, steps=args.steps)
    print("\n".join([table(result), "", *claims(result)]))


if __name__ == "__main__":
    main()
