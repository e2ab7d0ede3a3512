"""The shapes world: one drawn object per 32x32 image, tasks that ask for one of its attributes.

Everything is a pure function of a seed (``random.Random`` / numpy ``Generator``, never global
state), so a benchmark is reproducible from its seed alone. The task is never written into a
prompt: a model has to infer it from the answered examples, which is what in-context learning and
task vectors are about.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from lit_tv.episodes import Episode, Example, Modality

IMAGE_SIZE = 32
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 210),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
# Position word -> (row, column) of the image quadrant the object is drawn in.
POSITIONS: dict[str, tuple[int, int]] = {
    "top-left": (0, 0),
    "top-right": (0, 1),
    "bottom-left": (1, 0),
    "bottom-right": (1, 1),
}
TASKS: tuple[str, ...] = ("colour", "shape", "position")
# The many-shot family: this fraction of the shots answer another attribute of their own object (an
# annotator who often names the wrong attribute). One shot then names the task only with probability
# 0.55, four shots by majority about 0.67 of the time, and only many shots pin it down.
MANY_SHOT_DISTRACTORS = 0.45

Split = Literal["train", "heldout"]


@dataclass(frozen=True)
class ShapeObject:
    """One object; its attributes are the answers of the tasks."""

    colour: str
    shape: str
    position: str

    @property
    def text(self) -> str:
        """The text rendering used for cross-modal examples, e.g. ``purple star top-left``."""
        return f"{self.colour} {self.shape} {self.position}"

    def attribute(self, task: str) -> str:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}, expected one of {TASKS}")
        return getattr(self, task)


ALL_OBJECTS: tuple[ShapeObject, ...] = tuple(
    ShapeObject(colour, shape, position) for colour, shape, position in itertools.product(COLOURS, SHAPES, POSITIONS)
)
# Held out of training: the 20 combinations whose attribute indices sum to a multiple of 5.
# Every colour, shape and position still occurs in training, only never in these combinations,
# so held-out accuracy measures composition, not memorised images.
HELDOUT: frozenset[ShapeObject] = frozenset(
    obj
    for obj in ALL_OBJECTS
    if (list(COLOURS).index(obj.colour) + SHAPES.index(obj.shape) + list(POSITIONS).index(obj.position)) % 5 == 0
)
TRAIN_OBJECTS: tuple[ShapeObject, ...] = tuple(obj for obj in ALL_OBJECTS if obj not in HELDOUT)
HELDOUT_OBJECTS: tuple[ShapeObject, ...] = tuple(obj for obj in ALL_OBJECTS if obj in HELDOUT)


def objects(split: Split) -> tuple[ShapeObject, ...]:
    """The attribute combinations a split draws from."""
    if split == "train":
        return TRAIN_OBJECTS
    if split == "heldout":
        return HELDOUT_OBJECTS
    raise ValueError(f"unknown split {split!r}")


def _outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Polygon of a non-round shape centred at (cx, cy) with outer radius r."""

    def ring(radii: Sequence[float], start: float = -math.pi / 2) -> list[tuple[float, float]]:
        step = 2 * math.pi / len(radii)
        angles = [start + i * step for i in range(len(radii))]
        return [(cx + rad * math.cos(a), cy + rad * math.sin(a)) for rad, a in zip(radii, angles, strict=True)]

    if shape == "square":
        return ring([0.95 * r] * 4, start=math.pi / 4)
    if shape == "triangle":
        return ring([r] * 3)
    if shape == "star":
        return ring([r, 0.42 * r] * 5)
    if shape == "cross":
        a, b = r, 0.36 * r
        corners = [(b, a), (b, b), (a, b)]  # one arm's corner, then three quarter turns clockwise
        for _ in range(3):
            corners += [(y, -x) for x, y in corners[-3:]]
        return [(cx + x, cy + y) for x, y in corners]
    raise ValueError(f"unknown shape {shape!r}")


def draw(obj: ShapeObject, rng: random.Random) -> Image.Image:
    """Render ``obj`` with random size, jitter, colour shade and a noisy background."""
    scale = 4  # draw large, then box-downsample: anti-aliased edges keep small shapes legible
    half = IMAGE_SIZE / 2
    row, col = POSITIONS[obj.position]
    radius = rng.uniform(5.0, 7.0)
    slack = half / 2 - radius
    cx = col * half + half / 2 + rng.uniform(-slack, slack)
    cy = row * half + half / 2 + rng.uniform(-slack, slack)
    big = Image.new("L", (IMAGE_SIZE * scale, IMAGE_SIZE * scale), 0)
    pen = ImageDraw.Draw(big)
    x, y, r = cx * scale, cy * scale, radius * scale
    if obj.shape == "circle":
        pen.ellipse((x - r, y - r, x + r, y + r), fill=255)
    else:
        pen.polygon(_outline(obj.shape, x, y, r), fill=255)
    alpha = np.asarray(big.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX), dtype=np.float32)[..., None] / 255

    noise = np.random.default_rng(rng.getrandbits(64))
    background = rng.uniform(15, 85) + noise.normal(0.0, 10.0, (IMAGE_SIZE, IMAGE_SIZE, 3))
    colour = np.asarray(COLOURS[obj.colour], dtype=np.float32) + np.asarray([rng.uniform(-20, 20) for _ in range(3)])
    pixels = background * (1 - alpha) + colour * alpha
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), mode="RGB")


def make_example(
    obj: ShapeObject, task: str, modality: Literal["image", "text"], rng: random.Random, answered: str | None = None
) -> Example:
    """An answered example: an image with empty text, or the object's text rendering.

    ``answered`` names the attribute the answer gives when it is not ``task`` (a distractor shot):
    its answers are then (the one shown, the task's), so the last answer is always the task's.
    """
    answers = (obj.attribute(task),) if answered is None else (obj.attribute(answered), obj.attribute(task))
    if modality == "image":
        return Example(text="", images=(draw(obj, rng),), answers=answers, task=task)
    return Example(text=obj.text, answers=answers, task=task)


def _pick_modality(modality: Modality, rng: random.Random) -> Literal["image", "text"]:
    if modality == "mixed":
        return "image" if rng.random() < 0.5 else "text"
    if modality in ("image", "text"):
        return modality
    raise ValueError(f"unknown modality {modality!r}")


def check_distractors(distractors: float) -> float:
    """The distractor rate, which must leave the task the most frequent answer (below 2/3)."""
    if not 0 <= distractors < 2 / 3:
        raise ValueError(
            f"distractors={distractors} must be in [0, 2/3): at 2/3 or more a shot answers the task "
            "no more often than each other attribute, so no number of shots names it"
        )
    return distractors


def make_episode(
    task: str,
    shots: int,
    rng: random.Random,
    split: Split = "train",
    shot_modality: Modality = "image",
    query_modality: Modality = "image",
    distractors: float = 0.0,
) -> Episode:
    """``shots`` answered examples and one query, all of one task, objects drawn from ``split``.

    ``"mixed"`` picks image or text independently for every example. Each shot answers, with
    probability ``distractors``, another (random) attribute of its object instead; the query's
    answer is always the task's.
    """
    check_distractors(distractors)
    pool = objects(split)
    examples = []
    for index, modality in enumerate([shot_modality] * shots + [query_modality]):
        obj, kind = rng.choice(pool), _pick_modality(modality, rng)
        answered = None
        if distractors and index < shots and rng.random() < distractors:  # no draw at 0: clean episodes unchanged
            answered = rng.choice([other for other in TASKS if other != task])
        examples.append(make_example(obj, task, kind, rng, answered))
    return Episode(query=examples[-1], shots=tuple(examples[:-1]))


def make_episodes(
    tasks: Sequence[str],
    n: int,
    shots: int,
    seed: int,
    split: Split = "train",
    shot_modality: Modality = "image",
    query_modality: Modality = "image",
    distractors: float = 0.0,
) -> list[Episode]:
    """``n`` episodes cycling through ``tasks`` (balanced per task), reproducible from ``seed``."""
    rng = random.Random(seed)
    return [
        make_episode(tasks[i % len(tasks)], shots, rng, split, shot_modality, query_modality, distractors)
        for i in range(n)
    ]
