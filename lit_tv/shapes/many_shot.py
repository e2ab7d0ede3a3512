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
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from transformers import AutoConfig

from lit_tv.callbacks.mean_activations import MeanActivations
from lit_tv.methods.icl import ICL
from lit_tv.methods.mtv import MTV
from lit_tv.shapes.datamodule import ShapesDataModule
from lit_tv.shapes.toy import max_image_shots
from lit_tv.shapes.world import MANY_SHOT_DISTRACTORS, TASKS
from lit_tv.vlm import VLMOptions, resolve_model_path

CHECKPOINT = Path(__file__).parent / "checkpoint_many_shot"
MODEL = "lit_tv/shapes-toy-many-shot"
ITERATIONS: tuple[int, ...] = (1, 4, 16, 100)


def context_shots(model: str = MODEL) -> tuple[int, int]:
    """The model's context in tokens and how many image shots (plus the query) fit in it."""
    context = AutoConfig.from_pretrained(resolve_model_path(model)).get_text_config().max_position_embeddings
    return context, max_image_shots(context)


def _trainer(max_steps: int = -1, means: bool = False) -> L.Trainer:
    """A quiet CPU trainer; ``means``: with the callback that fills MTV's mean activations."""
    return L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     limit_val_batches=0, callbacks=[MeanActivations(batch_size=16)] if means else [])


def _data(tasks: Sequence[str], seed: int, **sizes: int) -> ShapesDataModule:
    return ShapesDataModule(tasks=tasks, distractors=MANY_SHOT_DISTRACTORS, batch_size=1, eval_batch_size=64,
                            seed=seed, **sizes)


def _test(method: L.LightningModule, data: ShapesDataModule, trainer: L.Trainer | None = None) -> float:
    return (trainer or _trainer()).test(method, datamodule=data, verbose=False)[0]["test/accuracy"]


def accuracy_vs_shots(model: str = MODEL, queries: int = 150, seed: int = 0) -> dict:
    """Held-out ICL accuracy (first answer token, all three tasks) for 0 up to the most shots that fit.

    Returns ``{"shots": [...], "accuracy": [...], "context": tokens}``.
    """
    context, most = context_shots(model)
    shots = list(range(most + 1))
    accuracy = [_test(ICL(VLMOptions(model), max_new_tokens=1),
                      _data(TASKS, seed, test_shots=k, support_size=0, train_size=0, test_size=queries * len(TASKS)))
                for k in shots]
    return {"shots": shots, "accuracy": accuracy, "context": context}


def accuracy_vs_iterations(model: str = MODEL, iterations: Sequence[int] = ITERATIONS, tasks: Sequence[str] = TASKS,
                           steps: int = 40, samples: int = 32, queries: int = 150, seed: int = 0) -> dict:
    """MTV held-out accuracy with means over each number of 4-shot support episodes, one vector per task.

    For every task and count: the means, a REINFORCE head search of `steps` steps and zero-shot
    test queries (the same ones for every count). Also the zero-shot baseline and, for the largest
    count, the random-heads control (as many heads, drawn at random). Accuracies are means over
    tasks; ``per_task`` holds each task's MTV curve.
    """
    _, shots = context_shots(model)
    per_task: dict[str, list[float]] = {}
    zero_shot, random_heads = [], []
    for task in tasks:
        per_task[task] = []
        for count in iterations:
            data = _data([task], seed, shots=shots, support_size=count, train_size=100, test_size=queries)
            method = MTV(VLMOptions(model), max_new_tokens=1, samples=samples)
            trainer = _trainer(steps, means=True)
            L.seed_everything(seed, verbose=False)  # the REINFORCE mask samples: same for every count
            trainer.fit(method, datamodule=data)
            per_task[task].append(_test(method, data, trainer))
            if count == max(iterations):
                method.hparams.test_heads = "random"
                random_heads.append(_test(method, data, trainer))
        zero_shot.append(_test(ICL(VLMOptions(model), max_new_tokens=1),
                               _data([task], seed, support_size=0, train_size=0, test_size=queries)))
    mean = [sum(curve[i] for curve in per_task.values()) / len(tasks) for i in range(len(iterations))]
    return {"iterations": list(iterations), "accuracy": mean, "per_task": per_task, "shots_per_iteration": shots,
            "zero_shot": sum(zero_shot) / len(tasks), "random_heads": sum(random_heads) / len(tasks)}


def table(shots: dict, iterations: dict) -> str:
    """The README's table: one row per setting, held-out accuracy."""
    rows = [f"| ICL, {k} image shot{'s' * (k != 1)} | {a:.2f} |" for k, a in zip(shots["shots"], shots["accuracy"],
                                                                                   strict=True)]
    rows += [f"| MTV, means over {n} episodes of {iterations['shots_per_iteration']} shots | {a:.2f} |"
             for n, a in zip(iterations["iterations"], iterations["accuracy"], strict=True)]
    rows += [f"| MTV heads replaced at random ({max(iterations['iterations'])} episodes) | "
             f"{iterations['random_heads']:.2f} |"]
    header = f"| setting (context {shots['context']} tokens) | held-out accuracy |\n|---|---|"
    return "\n".join([header, *rows])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--queries", type=int, default=150, help="held-out queries per task")
    parser.add_argument("--steps", type=int, default=40, help="REINFORCE steps per MTV vector")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shots = accuracy_vs_shots(args.model, args.queries, args.seed)
    iterations = accuracy_vs_iterations(args.model, steps=args.steps, queries=args.queries, seed=args.seed)
    print(table(shots, iterations))


if __name__ == "__main__":
    main()
