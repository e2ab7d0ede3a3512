"""Train the toy VLM from scratch so that multimodal in-context learning emerges.

``python -m lit_tv.shapes.train --out DIR --seed 0 --steps 3600``. Every training sequence holds
0 to ``max_shots`` answered examples of one random task, each an image or its text rendering, and
the task is never stated: predicting later answers requires inferring the task from earlier ones.
The loss covers every answer token. Held-out accuracy (0-shot, 4-shot image, 4 text shots ->
image query) is logged to TensorBoard periodically, because in-context learning appears suddenly
(around step 1,000) and a short run looks like failure. Reproducible from ``--seed`` for a
fixed ``--threads``.

The many-shot toy is this script with ``--distractors`` (shots that answer another attribute),
``--context`` (the prompt length the model takes, so that only a few image shots fit), ``--init``
(start from the shipped toy's weights instead of from scratch), ``--denoise``, ``--uniform-tasks``
and ``--text-shots``; the README's "The many-shot family" gives the command.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm
from transformers import BatchFeature, LlavaForConditionalGeneration, LlavaProcessor

from lit_tv.episodes import Episode, Modality
from lit_tv.shapes.report import accuracy_by_task, heldout_episodes
from lit_tv.shapes.toy import SHAPES_TEMPLATE, build_model, build_processor
from lit_tv.shapes.world import make_episode

MODALITIES: tuple[Modality, ...] = ("image", "text", "mixed")
# Shape is by far the hardest attribute to see in 32x32 pixels, so half the sequences ask for it.
TASK_WEIGHTS: dict[str, float] = {"colour": 1.0, "shape": 2.0, "position": 1.0}
# Monitored setting -> short name for the progress bar.
MONITORED = {"0-shot": "0shot", "4-shot image": "4img", "4 text shots -> image": "txt2img"}


def training_batch(
    rng: random.Random,
    batch_size: int,
    max_shots: int,
    distractors: float = 0.0,
    weights: dict[str, float] = TASK_WEIGHTS,
    text_shots: int = 0,
) -> list[Episode]:
    """Episodes with random task and modality pairing (text shots -> image query included).

    One shot count per batch keeps sequence lengths alike: little padding, so cheap on a CPU.
    ``weights``: how often each task is drawn (with distractors also the prior a majority is weighed against).
    ``text_shots``: half the batches instead hold 0 to this many text shots (short: many fit a small context).
    """
    text = bool(text_shots) and rng.random() < 0.5  # no draw without text_shots: the shipped toy's stream is unchanged
    shots = rng.randint(0, text_shots if text else max_shots)
    return [
        make_episode(
            task, shots, rng, "train", "text" if text else rng.choice(MODALITIES), rng.choice(MODALITIES), distractors
        )
        for task in rng.choices(list(weights), weights=list(weights.values()), k=batch_size)
    ]


def encode(processor: LlavaProcessor, episodes: Sequence[Episode], denoise: bool = False) -> BatchFeature:
    """Prompts with every answer filled in; labels only on answer tokens (those after ``=``).

    ``denoise``: the label of each answer is the task's (an example's last answer), also where the
    prompt shows a distractor, so the loss rewards inferring the task rather than the noise rate.
    """
    texts = [
        SHAPES_TEMPLATE.render(episode, processor.image_token) + SHAPES_TEMPLATE.render_answer(episode.query)
        for episode in episodes
    ]
    images = [image for episode in episodes for image in episode.images()]
    inputs = processor(text=texts, images=images or None, padding=True, return_tensors="pt")
    ids = inputs["input_ids"]
    after_delimiter = torch.zeros_like(ids, dtype=torch.bool)
    after_delimiter[:, 1:] = ids[:, :-1] == processor.tokenizer.convert_tokens_to_ids("=")
    labels = torch.where(after_delimiter, ids, -100)
    if denoise:
        for row, episode in enumerate(episodes):
            words = [example.answers[-1] for example in (*episode.shots, episode.query)]
            labels[row, after_delimiter[row]] = torch.tensor(processor.tokenizer.convert_tokens_to_ids(words))
    inputs["labels"] = labels
    return inputs


def check_fits(processor: LlavaProcessor, context: int, max_shots: int, text_shots: int) -> None:
    """Refuse, before training starts, shot counts whose longest sequence (image query) exceeds ``context``."""
    rng = random.Random(0)
    cases: tuple[tuple[int, Modality], ...] = ((max_shots, "image"), (text_shots, "text"))
    for shots, modality in cases:
        longest = encode(processor, [make_episode("colour", shots, rng, "train", modality, "image")])
        tokens = longest["input_ids"].shape[1]
        if tokens > context:
            option = "max_shots" if modality == "image" else "text_shots"
            raise ValueError(f"{option}={shots} {modality} shots take {tokens} tokens, more than context={context}")


def warmup_cosine(warmup: int, steps: int, floor: float = 0.1) -> Callable[[int], float]:
    """LR multiplier: linear warmup, then cosine decay to ``floor``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def train(
    out: Path,
    seed: int,
    steps: int,
    batch_size: int,
    lr: float,
    max_shots: int,
    eval_every: int,
    logs: Path,
    threads: int = 1,
    distractors: float = 0.0,
    context: int = 1024,
    init: Path | None = None,
    denoise: bool = False,
    uniform_tasks: bool = False,
    text_shots: int = 0,
) -> dict[str, dict[str, float]]:
    """Train, log, save model + processor to ``out``; returns the final held-out scores.

    ``init``: a toy checkpoint to continue from (its context is set to ``context``); else from scratch.
    ``uniform_tasks``: draw the tasks equally often instead of by `TASK_WEIGHTS`; ``text_shots``: see
    `training_batch`.
    """
    weights = dict.fromkeys(TASK_WEIGHTS, 1.0) if uniform_tasks else TASK_WEIGHTS
    processor = build_processor()
    check_fits(processor, context, max_shots, text_shots)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    if init is None:
        model = build_model(processor.tokenizer, context).train()
    else:
        model = LlavaForConditionalGeneration.from_pretrained(init).train()
        model.config.text_config.max_position_embeddings = context
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(min(100, steps // 10 + 1), steps))
    # Monitoring episodes use their own seed, so evaluating never changes the training stream.
    sets = {name: heldout_episodes(name, 20, seed + 1, distractors=distractors) for name in MONITORED}
    writer = SummaryWriter(logs / f"seed{seed}")
    scores: dict[str, dict[str, float]] = {}
    progress = tqdm(range(1, steps + 1), desc="train", dynamic_ncols=True)
    for step in progress:
        batch = training_batch(rng, batch_size, max_shots, distractors, weights, text_shots)
        loss = model(**encode(processor, batch, denoise)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        writer.add_scalar("train/loss", loss.item(), step)
        writer.add_scalar("train/lr", schedule.get_last_lr()[0], step)
        if step % eval_every == 0 or step == steps:
            model.eval()  # held-out first-token accuracy per monitored setting, per task and mean
            scores = {name: accuracy_by_task(model, processor, episodes) for name, episodes in sets.items()}
            model.train()
            for name, by_task in scores.items():
                for task, value in by_task.items():
                    writer.add_scalar(f"heldout/{name}/{task}", value, step)
            means = {MONITORED[name]: f"{by_task['mean']:.2f}" for name, by_task in scores.items()}
            progress.set_postfix(loss=f"{loss.item():.3f}", **means)
            tqdm.write(f"step {step} loss {loss.item():.4f} " + " ".join(f"{k}={v}" for k, v in means.items()))
    writer.close()
    model.eval()
    model.save_pretrained(out)  # model (safetensors) and processor, which the ``Auto*`` classes load offline
    processor.save_pretrained(out)
    return scores


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for model + processor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-shots", type=int, default=7)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--logs", type=Path, default=Path("logs/shapes"), help="TensorBoard folder")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 because two busy processes with 2 threads each on 2 cores run 5-10x slower",
    )
    parser.add_argument(
        "--distractors",
        type=float,
        default=0.0,
        help="fraction of shots that answer another attribute of their object (many-shot family)",
    )
    parser.add_argument("--context", type=int, default=1024, help="the model's max_position_embeddings")
    parser.add_argument("--init", type=Path, default=None, help="continue from this toy checkpoint")
    parser.add_argument(
        "--denoise", action="store_true", help="label every answer with the task's, also where a distractor is shown"
    )
    parser.add_argument("--uniform-tasks", action="store_true", help="draw every task equally often")
    parser.add_argument(
        "--text-shots", type=int, default=0, help="half the batches hold up to this many text shots instead (0: off)"
    )
    train(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
