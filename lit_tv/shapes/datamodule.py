"""Shapes-world episodes for Lightning: support episodes, training queries, held-out val/test.

Training queries come from the training combinations and evaluation from the held-out ones, so a
task vector is always judged on objects it never averaged over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from lit_tv.data.datamodules import EpisodeDataModule, Role, Sizes
from lit_tv.episodes import Episode, Modality
from lit_tv.shapes.toy import SHAPES_TEMPLATE
from lit_tv.shapes.world import COLOURS, POSITIONS, SHAPES, TASKS, Split, check_distractors, make_episodes

# Distinct seed streams per role, so growing one role never changes another.
_STREAMS: dict[Role, int] = {"support": 0, "train": 1, "val": 2, "test": 3}
_SPLITS: dict[Role, Split] = {"support": "train", "train": "train", "val": "heldout", "test": "heldout"}


class ShapesDataModule(EpisodeDataModule):
    """Episodes of the shapes world, reproducible from ``seed`` (the generator draws every image).

    ``shots`` examples per support episode; ``train_size`` 0-shot training queries;
    ``val_size`` / ``test_size`` held-out queries with ``test_shots`` shots (0 for task-vector
    methods, k for the ICL baseline). Shots and queries are images, text renderings, or mixed.
    ``distractors``: the fraction of shots (of every role) that answer another attribute of their
    object; `lit_tv.shapes.world.MANY_SHOT_DISTRACTORS` makes the many-shot family. Queries never do.
    ``support_skip``: the support episodes start this far into the seed's support stream, so one seed gives
    disjoint draws of support episodes beside the same queries (the many-shot study's kept-heads means).
    """

    template = SHAPES_TEMPLATE  # the prompt format the toy VLM was trained on
    eval_by_length = False  # batches as drawn: the README's measured tables were run in this order
    # The toy vocabulary has no word for a task, so a task is "stated" by listing its answers.
    instructions = {"colour": " ".join(COLOURS), "shape": " ".join(SHAPES), "position": " ".join(POSITIONS)}

    def __init__(
        self,
        tasks: Sequence[str] = TASKS,
        shots: int = 4,
        test_shots: int = 0,
        support_size: int = 100,
        train_size: int = 100,
        val_size: int = 60,
        test_size: int = 300,
        shot_modality: Modality = "image",
        query_modality: Modality = "image",
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        seed: int | None = None,
        seeds: Sequence[int] | None = None,
        distractors: float = 0.0,
        support_skip: int = 0,
    ) -> None:
        unknown = set(tasks) - set(TASKS)
        if unknown or not tasks:
            raise ValueError(f"data.init_args.tasks: unknown or no tasks {list(tasks)}, expected some of {TASKS}")
        for option, size in (("val_size", val_size), ("test_size", test_size)):
            if size is None:  # what "every usable record" means for benchmarks read from files
                raise ValueError(
                    f"data.init_args.{option}: null (every record of a benchmark's files) has no meaning in the drawn "
                    "shapes world; give a number of queries"
                )
        self.distractors = check_distractors(distractors)
        if support_skip < 0:
            raise ValueError(f"data.init_args.support_skip={support_skip}: give a number of episodes, 0 or more")
        self.support_skip = support_skip
        super().__init__(
            shots=shots,
            test_shots=test_shots,
            support_size=support_size,
            train_size=train_size,
            val_size=val_size,
            test_size=test_size,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            seed=seed,
            seeds=seeds,
        )
        self.tasks = tuple(tasks)
        self.shot_modality: Modality = shot_modality
        self.query_modality: Modality = query_modality

    def build_episodes(self, seed: int, sizes: Sizes) -> dict[Role, list[Episode]]:
        shots: dict[Role, int] = {"support": self.shots, "train": 0, "val": self.test_shots, "test": self.test_shots}
        skip: dict[Role, int] = {"support": self.support_skip}
        return {
            role: make_episodes(
                self.tasks,
                cast(int, sizes[role]) + skip.get(role, 0),  # ints here (see __init__)
                shots[role],
                seed * len(_STREAMS) + stream,
                _SPLITS[role],
                self.shot_modality,
                self.query_modality,
                self.distractors,
            )[skip.get(role, 0) :]
            for role, stream in _STREAMS.items()
        }
