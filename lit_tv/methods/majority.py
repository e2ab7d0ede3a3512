"""The cross-modal paper's Random baseline: every query answered with its task's most frequent answer.

No model runs. The label counts come from the support episodes' queries (the cross-modal val records),
so the baseline knows the answer distribution a task vector is built from, and nothing of the test split.
"""

from __future__ import annotations

from collections import Counter

from lit_tv.data.datamodules import Role
from lit_tv.episodes import Episode
from lit_tv.methods.base import FrozenVLMMethod


class MajorityLabel(FrozenVLMMethod):
    """Answers each test query with the most common support answer of its task (and data seed)."""

    def data_roles(self, stage: str) -> set[Role]:
        return super().data_roles(stage) | {"support"}

    def configure_model(self) -> None:
        """Nothing to load: the baseline never runs the VLM."""

    def on_test_start(self) -> None:
        super().on_test_start()
        counts: dict[tuple[int, str], Counter[str]] = {}
        for episode in self.trainer.datamodule.support_episodes():
            counts.setdefault((episode.seed, episode.task), Counter())[episode.query.answer] += 1
        # most_common keeps first-seen order among ties, so the choice is reproducible
        self.labels = {group: counter.most_common(1)[0][0] for group, counter in counts.items()}

    def answer(self, batch: list[Episode]) -> list[str]:
        missing = sorted({episode.task for episode in batch if (episode.seed, episode.task) not in self.labels})
        if missing:
            raise ValueError(f"no support episodes of tasks {missing} to count their labels: "
                             "raise data.init_args.support_size")
        return [self.labels[episode.seed, episode.task] for episode in batch]
