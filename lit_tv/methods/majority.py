"""The cross-modal paper's Random baseline: every query answered with a majority answer, no model run.

As the paper defines it (``source: demonstrations``), the answer is the most frequent answer among the
query's own demonstrations (its ``test_shots``, e.g. 5). ``source: task`` answers with the task's most
frequent answer among the support episodes' queries (the cross-modal val records the vectors are built
from), knowing nothing of the test split. Ties go to the first answer seen, so the choice is reproducible.
"""

from __future__ import annotations

from collections import Counter
from contextlib import AbstractContextManager
from typing import Literal

from lit_tv.data.datamodules import Role, datamodule_of
from lit_tv.episodes import Episode
from lit_tv.methods.base import FrozenVLMMethod
from lit_tv.model.loading import SHAPES_TOY, VLMOptions


def majority(answers: list[str]) -> str:
    """The most frequent answer; among ties the first seen."""
    return Counter(answers).most_common(1)[0][0]


class MajorityLabel(FrozenVLMMethod):
    """Answers each test query with the majority answer of its demonstrations (or of its task's support)."""

    def __init__(
        self,
        model: VLMOptions = SHAPES_TOY,
        max_new_tokens: int = 1,
        source: Literal["demonstrations", "task"] = "demonstrations",
    ) -> None:
        super().__init__(model, max_new_tokens)
        if source not in ("demonstrations", "task"):
            raise ValueError(f"model.init_args.source must be 'demonstrations' or 'task', got {source!r}")
        self.source = source

    def data_roles(self, stage: str) -> set[Role]:
        return super().data_roles(stage) | ({"support"} if self.source == "task" else set())

    def configure_model(self) -> None:
        """Nothing to load: the baseline never runs the VLM."""

    def on_test_start(self) -> None:
        super().on_test_start()
        if self.source == "demonstrations":
            return
        answers: dict[tuple[int, str], list[str]] = {}
        for episode in datamodule_of(self.trainer).support_episodes():
            answers.setdefault((episode.seed, episode.task), []).append(episode.query.answer)
        self.labels = {group: majority(values) for group, values in answers.items()}

    def answer(self, batch: list[Episode], patching: AbstractContextManager | None = None) -> list[str]:
        # no model runs: there is nothing to patch
        if self.source == "demonstrations":
            if any(not episode.shots for episode in batch):
                raise ValueError(
                    "the Random baseline answers with the majority of each query's demonstrations: "
                    "set data.init_args.test_shots (the paper: 5)"
                )
            return [majority([shot.answer for shot in episode.shots]) for episode in batch]
        missing = sorted({episode.task for episode in batch if (episode.seed, episode.task) not in self.labels})
        if missing:
            raise ValueError(
                f"no support episodes of tasks {missing} to count their labels: raise data.init_args.support_size"
            )
        return [self.labels[episode.seed, episode.task] for episode in batch]
