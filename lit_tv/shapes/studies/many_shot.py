"""The many-shot family and its toy: ICL accuracy vs shots (capped by the context) and MTV vs iterations.

``python -m lit_tv.shapes.studies.many_shot [--seeds 0 1 2]`` measures both on the shipped many-shot toy, once
per seed, and prints the table (mean ± std (min–max) over the seeds) and what held on every seed. In this
family 45% of the shots answer another attribute of their own object (`MANY_SHOT_DISTRACTORS`), so the task
is only a majority among the shots, and the toy's context holds 4 image shots: ICL cannot see enough of them.
MTV averages head activations over many 4-shot support episodes (its iterations) and patches them into
zero-shot queries; its head search also scores 100 labelled zero-shot training queries, which ICL never
sees. Both run through the same Lightning methods as `lit-tv test` / `lit-tv fit`, and the functions return
plain numbers, for the findings figures.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import transformers
from transformers import AutoConfig

from lit_tv.callbacks.mean_activations import MeanActivations
from lit_tv.console import lightning_warnings_only
from lit_tv.interventions.averaging import mean_head_activations
from lit_tv.methods.icl import ICL
from lit_tv.methods.mtv import MTV
from lit_tv.model.loading import VLMOptions, resolve_model_path
from lit_tv.shapes.datamodule import ShapesDataModule
from lit_tv.shapes.toy import max_image_shots
from lit_tv.shapes.world import MANY_SHOT_DISTRACTORS, TASKS
from lit_tv.spread import format_spread, on_seeds

CHECKPOINT = Path(__file__).parents[1] / "checkpoint_many_shot"
MODEL = "lit_tv/shapes-toy-many-shot"
ITERATIONS: tuple[int, ...] = (1, 4, 16, 100)
SEEDS: tuple[int, ...] = (0, 1, 2)
REINFORCE_QUERIES = 100  # labelled zero-shot training queries per task that MTV's head search scores


def context_shots(model: str = MODEL) -> tuple[int, int]:
    """The model's context in tokens and how many image shots (plus the query) fit in it."""
    context = AutoConfig.from_pretrained(resolve_model_path(model)).get_text_config().max_position_embeddings
    return context, max_image_shots(context)


def _trainer(max_steps: int = -1, means: bool = False) -> L.Trainer:
    """A quiet CPU trainer; ``means``: with the callback that fills MTV's mean activations."""
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[MeanActivations(batch_size=16)] if means else [],
    )


def _data(tasks: Sequence[str], seed: int, **sizes: Any) -> ShapesDataModule:  # *_size options
    return ShapesDataModule(
        tasks=tasks, distractors=MANY_SHOT_DISTRACTORS, batch_size=1, eval_batch_size=64, seed=seed, **sizes
    )


def _test(method: L.LightningModule, data: ShapesDataModule, trainer: L.Trainer | None = None) -> float:
    return (trainer or _trainer()).test(method, datamodule=data, verbose=False)[0]["test/accuracy"]


def accuracy_vs_shots(model: str = MODEL, queries: int = 150, seed: int = 0) -> dict:
    """Held-out ICL accuracy (first answer token, all three tasks) for 0 up to the most shots that fit.

    Returns ``{"shots": [...], "accuracy": [...], "context": tokens}``.
    """
    context, most = context_shots(model)
    shots = list(range(most + 1))
    accuracy = [
        _test(
            ICL(VLMOptions(model), max_new_tokens=1),
            _data(TASKS, seed, test_shots=k, support_size=0, train_size=0, test_size=queries * len(TASKS)),
        )
        for k in shots
    ]
    return {"shots": shots, "accuracy": accuracy, "context": context}


def _fit(
    model: str, task: str, count: int, shots: int, steps: int, samples: int, queries: int, seed: int
) -> tuple[MTV, L.Trainer, ShapesDataModule]:
    """MTV for one task: means over `count` support episodes, `steps` REINFORCE steps, heads chosen."""
    data = _data([task], seed, shots=shots, support_size=count, train_size=REINFORCE_QUERIES, test_size=queries)
    # the REINFORCE samples and random heads seeded explicitly: the same for every count, in any order
    method = MTV(VLMOptions(model), max_new_tokens=1, samples=samples, draw_seed=seed)
    trainer = _trainer(steps, means=True)
    trainer.fit(method, datamodule=data)
    return method, trainer, data


def _with_fewer_episodes(method: MTV, trainer: L.Trainer, data: ShapesDataModule, count: int, draws: int) -> float:
    """Test accuracy with the chosen heads and means over `count` episodes, averaged over `draws` disjoint draws
    (the first `count` support episodes, the next `count`, ...)."""
    task, shots, seed = data.tasks, data.shots, data.seed
    support = _data(task, seed, shots=shots, support_size=count * draws, train_size=0, test_size=0).support_episodes()
    chosen = method.mean_activations.clone()
    scores = []
    for draw in range(draws):
        episodes = support[draw * count : (draw + 1) * count]
        method.mean_activations.copy_(mean_head_activations(trainer, method.vlm, method.template, episodes))
        scores.append(_test(method, data, trainer))
    method.mean_activations.copy_(chosen)
    return sum(scores) / draws


def accuracy_vs_iterations(
    model: str = MODEL,
    iterations: Sequence[int] = ITERATIONS,
    tasks: Sequence[str] = TASKS,
    steps: int = 40,
    samples: int = 32,
    queries: int = 150,
    draws: int = 3,
    seed: int = 0,
) -> dict:
    """MTV held-out accuracy with means over each number of 4-shot support episodes (iterations), per task.

    Two curves, means over tasks: ``searched``, the whole method per count (means, a REINFORCE head
    search of `steps` steps on labelled zero-shot training queries, zero-shot test queries, the same
    for every count); ``fixed_heads``, the heads searched with the largest count kept and only the
    means recomputed over fewer episodes (averaged over `draws` disjoint draws), which shows what the
    means themselves carry. Also the zero-shot baseline and, for the largest count, the random-heads
    control: ``random_heads``, each draw's accuracy (mean over tasks; as many heads, drawn at random per task).
    ``per_task`` holds each task's two curves.
    """
    iterations = sorted(iterations)
    _, shots = context_shots(model)
    per_task: dict[str, dict[str, list[float]]] = {}
    zero_shot, random_heads = [], []  # random_heads: per task, every draw's accuracy
    for task in tasks:
        searched = []
        for count in iterations:
            method, trainer, data = _fit(model, task, count, shots, steps, samples, queries, seed)
            searched.append(_test(method, data, trainer))
        method.hparams.test_heads = "random"
        _test(method, data, trainer)
        assert method.random_control is not None, "a random-heads test builds its control"
        random_heads.append(method.random_control.accuracies())
        method.hparams.test_heads = "selected"
        fixed = [_with_fewer_episodes(method, trainer, data, count, draws) for count in iterations[:-1]]
        per_task[task] = {"searched": searched, "fixed_heads": [*fixed, searched[-1]]}
        zero_shot.append(
            _test(
                ICL(VLMOptions(model), max_new_tokens=1),
                _data([task], seed, support_size=0, train_size=0, test_size=queries),
            )
        )

    def mean(curve: str) -> list[float]:
        return [sum(by[curve][i] for by in per_task.values()) / len(tasks) for i in range(len(iterations))]

    return {
        "iterations": iterations,
        "searched": mean("searched"),
        "fixed_heads": mean("fixed_heads"),
        "per_task": per_task,
        "shots_per_iteration": shots,
        "reinforce_queries": REINFORCE_QUERIES,
        "steps": steps,
        "zero_shot": sum(zero_shot) / len(tasks),
        "random_heads": [sum(draws) / len(tasks) for draws in zip(*random_heads, strict=True)],
    }


def over_seeds(seeds: Sequence[int] = SEEDS, model: str = MODEL, queries: int = 150, **iterations_options: Any) -> dict:
    """`accuracy_vs_shots` and `accuracy_vs_iterations` once per seed (data, REINFORCE and random heads)."""
    return {
        "seeds": list(seeds),
        "icl": [accuracy_vs_shots(model, queries, seed) for seed in seeds],
        "mtv": [accuracy_vs_iterations(model, queries=queries, seed=seed, **iterations_options) for seed in seeds],
    }


def _cell(values: Sequence[float]) -> str:
    return format_spread(values, digits=2)


def table(result: dict) -> str:
    """The many-shot table: one row per setting, held-out accuracy (mean over tasks) as mean ± std (min–max)
    over the seeds; the random heads over every draw of every seed."""
    icl, mtv = result["icl"], result["mtv"]
    last, draws = mtv[0]["iterations"][-1], len(mtv[0]["random_heads"])
    rows = [f"| 0-shot | {_cell([run['zero_shot'] for run in mtv])} | |"]
    rows += [
        f"| ICL, {k} image shot{'s' * (k != 1)} | {_cell([run['accuracy'][i] for run in icl])} | |"
        for i, k in enumerate(icl[0]["shots"])
        if k
    ]
    rows += [
        f"| MTV, means over {n} episode{'s' * (n != 1)} of {mtv[0]['shots_per_iteration']} shots | "
        f"{_cell([run['searched'][i] for run in mtv])} | {_cell([run['fixed_heads'][i] for run in mtv])} |"
        for i, n in enumerate(mtv[0]["iterations"])
    ]
    randoms = [draw for run in mtv for draw in run["random_heads"]]
    rows.append(
        f"| MTV, as many heads at random ({draws} draws per task and seed, {last} episodes) | {_cell(randoms)} | |"
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
    transformers.utils.logging.disable_progress_bar()
    with lightning_warnings_only():  # one table, not a Trainer banner per run; the levels come back after
        result = over_seeds(args.seeds, args.model, args.queries, steps=args.steps)
    print("\n".join([table(result), "", *claims(result)]))


if __name__ == "__main__":
    main()
