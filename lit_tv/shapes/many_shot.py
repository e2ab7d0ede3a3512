"""The many-shot family and its toy: ICL accuracy vs shots (capped by the context) and MTV vs iterations.

``python -m lit_tv.shapes.many_shot`` measures both on the shipped many-shot toy and prints the
README's table. In this family 45% of the shots answer another attribute of their own object
(`MANY_SHOT_DISTRACTORS`), so the task is only a majority among the shots, and the toy's context
holds 4 image shots: ICL cannot see enough of them. MTV averages head activations over many
4-shot support episodes (its iterations) and patches them into zero-shot queries. Both run
through the same Lightning methods as `lit-tv test` / `lit-tv fit`, and the functions return
plain numbers, for the findings figures.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import transformers
from transformers import AutoConfig

from lit_tv.averaging import mean_head_activations
from lit_tv.callbacks.mean_activations import MeanActivations
from lit_tv.loading import VLMOptions, resolve_model_path
from lit_tv.methods.icl import ICL
from lit_tv.methods.mtv import MTV
from lit_tv.shapes.datamodule import ShapesDataModule
from lit_tv.shapes.toy import max_image_shots
from lit_tv.shapes.world import MANY_SHOT_DISTRACTORS, TASKS

CHECKPOINT = Path(__file__).parent / "checkpoint_many_shot"
MODEL = "lit_tv/shapes-toy-many-shot"
ITERATIONS: tuple[int, ...] = (1, 4, 16, 100)


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
    data = _data([task], seed, shots=shots, support_size=count, train_size=100, test_size=queries)
    method = MTV(VLMOptions(model), max_new_tokens=1, samples=samples)
    trainer = _trainer(steps, means=True)
    L.seed_everything(seed, verbose=False)  # the REINFORCE mask samples: the same for every count
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
    control (as many heads, drawn at random). ``per_task`` holds each task's two curves.
    """
    iterations = sorted(iterations)
    _, shots = context_shots(model)
    per_task: dict[str, dict[str, list[float]]] = {}
    zero_shot, random_heads = [], []
    for task in tasks:
        searched = []
        for count in iterations:
            method, trainer, data = _fit(model, task, count, shots, steps, samples, queries, seed)
            searched.append(_test(method, data, trainer))
        method.hparams.test_heads = "random"
        random_heads.append(_test(method, data, trainer))
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
        "zero_shot": sum(zero_shot) / len(tasks),
        "random_heads": sum(random_heads) / len(tasks),
    }


def table(shots: dict, iterations: dict) -> str:
    """The README's table: one row per setting, held-out accuracy (mean over tasks)."""
    rows = [f"| 0-shot | {iterations['zero_shot']:.2f} | |"]
    rows += [
        f"| ICL, {k} image shot{'s' * (k != 1)} | {a:.2f} | |"
        for k, a in zip(shots["shots"], shots["accuracy"], strict=True)
        if k
    ]
    rows += [
        f"| MTV, means over {n} episode{'s' * (n != 1)} of {iterations['shots_per_iteration']} shots | "
        f"{a:.2f} | {b:.2f} |"
        for n, a, b in zip(iterations["iterations"], iterations["searched"], iterations["fixed_heads"], strict=True)
    ]
    rows += [
        f"| MTV, as many heads at random ({max(iterations['iterations'])} episodes) | "
        f"{iterations['random_heads']:.2f} | |"
    ]
    header = (
        f"| setting (context {shots['context']} tokens) | held-out accuracy | "
        f"MTV with the heads of the {max(iterations['iterations'])}-episode row |\n|---|---|---|"
    )
    return "\n".join([header, *rows])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--queries", type=int, default=150, help="held-out queries per task")
    parser.add_argument("--steps", type=int, default=40, help="REINFORCE steps per MTV vector")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the least CPU time on a busy box)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # one table, not a Trainer banner per run
    transformers.utils.logging.disable_progress_bar()
    shots = accuracy_vs_shots(args.model, args.queries, args.seed)
    iterations = accuracy_vs_iterations(args.model, steps=args.steps, queries=args.queries, seed=args.seed)
    print(table(shots, iterations))


if __name__ == "__main__":
    main()
