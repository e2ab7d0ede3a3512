"""Held-out first-token accuracy of a shapes-world checkpoint, per task and prompt setting.

``python -m lit_tv.shapes.report [--checkpoint DIR] [--n N] [--seed S]``. Plain transformers calls
(left padding, one batched forward, argmax at the last position), so the numbers do not depend on
the rest of the framework.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, LlavaProcessor, PreTrainedModel

from lit_tv.episodes import Episode, Modality
from lit_tv.shapes.toy import SHAPES_TEMPLATE
from lit_tv.shapes.world import TASKS, make_episodes

CHECKPOINT = Path(__file__).parent / "checkpoint"
# Setting name -> (shots, shot modality, query modality).
SETTINGS: dict[str, tuple[int, Modality, Modality]] = {
    "0-shot": (0, "image", "image"),
    "1-shot image": (1, "image", "image"),
    "4-shot image": (4, "image", "image"),
    "4-shot text": (4, "text", "text"),
    "4 text shots -> image": (4, "text", "image"),
}


@torch.no_grad()
def first_token_hits(
    model: PreTrainedModel, processor: LlavaProcessor, episodes: Sequence[Episode], batch_size: int = 64
) -> list[bool]:
    """Whether the answer's first token is the argmax at the last prompt position, per episode."""
    tokenizer = processor.tokenizer
    if tokenizer.padding_side != "left":
        raise ValueError("the last position is only the prompt's end with left padding")
    hits: list[bool] = []
    for start in range(0, len(episodes), batch_size):
        batch = episodes[start : start + batch_size]
        images = [image for episode in batch for image in episode.images()]
        inputs = processor(
            text=[SHAPES_TEMPLATE.render(episode, processor.image_token) for episode in batch],
            images=images or None,
            padding=True,
            return_tensors="pt",
        )
        predicted = model(**inputs).logits[:, -1].argmax(-1).tolist()
        targets = [tokenizer(episode.query.answer, add_special_tokens=False).input_ids[0] for episode in batch]
        hits.extend(p == t for p, t in zip(predicted, targets, strict=True))
    return hits


def accuracy_by_task(
    model: PreTrainedModel, processor: LlavaProcessor, episodes: Sequence[Episode]
) -> dict[str, float]:
    """Mean first-token hit rate per task, plus ``mean`` over tasks."""
    hits = first_token_hits(model, processor, episodes)
    tasks = sorted({episode.task for episode in episodes}, key=list(TASKS).index)
    scores = {
        task: sum(h for h, e in zip(hits, episodes, strict=True) if e.task == task)
        / sum(e.task == task for e in episodes)
        for task in tasks
    }
    scores["mean"] = sum(scores.values()) / len(scores)
    return scores


def heldout_episodes(setting: str, n: int, seed: int, distractors: float = 0.0) -> list[Episode]:
    """``n`` held-out episodes per task for one of ``SETTINGS`` (shots with that distractor rate)."""
    shots, shot_modality, query_modality = SETTINGS[setting]
    return make_episodes(TASKS, n * len(TASKS), shots, seed, "heldout", shot_modality, query_modality, distractors)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--n", type=int, default=100, help="episodes per task and setting")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = AutoModelForImageTextToText.from_pretrained(args.checkpoint).eval()
    processor = AutoProcessor.from_pretrained(args.checkpoint)
    print(f"held-out first-token accuracy, {args.n} episodes per task, seed {args.seed}")
    print(f"{'setting':<24}" + "".join(f"{name:>10}" for name in (*TASKS, "mean")))
    for setting in SETTINGS:
        scores = accuracy_by_task(model, processor, heldout_episodes(setting, args.n, args.seed))
        print(f"{setting:<24}" + "".join(f"{scores[name]:>10.2f}" for name in (*TASKS, "mean")))


if __name__ == "__main__":
    main()
