"""DataLoaders of episodes that give the same batches on one process or many.

Every rank takes its slice of each *global* batch (the configured batch size), in one seeded
order. A run on N processes therefore sees, step for step, the queries one process sees; eval
sets are split without the padding duplicates `DistributedSampler` adds. The training loader is
resumable: a checkpoint saved mid-epoch records how far the epoch got, and the resumed fit goes
on with the next query of the same order (not the epoch's first).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from lit_tv.episodes import Episode


def by_length(episodes: Sequence[Episode]) -> list[int]:
    """Indices of `episodes`, shortest prompts first (`Episode.prompt_size`; equal sizes keep their order): batches
    of consecutive ones pad little, and a batch of short answers stops without waiting on a long prompt."""
    return sorted(range(len(episodes)), key=lambda index: episodes[index].prompt_size())


class GlobalBatchSampler(DistributedSampler):
    """Indices of this rank's slices of consecutive global batches.

    A DistributedSampler subclass, so Lightning keeps it instead of injecting its own. In `training` the
    order is shuffled and a final batch that cannot give every rank the same share is dropped, so no rank
    waits on a gradient sync the others skip (the batch is a multiple of the processes: checked in the
    DataModule's setup).
    """

    def __init__(
        self,
        size: int,
        global_batch: int,
        rank: int,
        world_size: int,
        seed: int,
        training: bool,
        order: list[int] | None = None,
    ) -> None:
        """`order`: the unshuffled (eval) order, e.g. `by_length`; None: as given."""
        # any sized sequence serves (torch's stubs type the argument as Dataset)
        super().__init__(range(size), num_replicas=world_size, rank=rank, shuffle=training, seed=seed)  # type: ignore[arg-type]
        self.size, self.global_batch, self.training = size, global_batch, training
        self.order = list(range(size)) if order is None else order
        self._served = 0  # indices handed out in the current epoch
        self._resume: dict[str, int] | None = None

    def _order(self) -> list[int]:
        if not self.shuffle:
            return self.order
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()

    def _slices(self) -> Iterator[list[int]]:
        order = self._order()
        for start in range(0, self.size, self.global_batch):
            batch = order[start : start + self.global_batch]
            if self.training and len(batch) < self.global_batch:
                return
            share = -(-len(batch) // self.num_replicas)
            yield batch[self.rank * share : (self.rank + 1) * share]

    def __iter__(self) -> Iterator[int]:
        skip = self._resume["served"] if self._resume and self._resume["epoch"] == self.epoch else 0
        self._resume, self._served = None, 0
        for index in (index for part in self._slices() for index in part):
            self._served += 1
            if self._served > skip:
                yield index

    def state_dict(self) -> dict[str, int]:
        """How far this epoch got. Every rank serves as many indices per training batch (the batch is a
        multiple of the processes), so rank 0's count, the one a checkpoint keeps, holds for all."""
        return {"epoch": self.epoch, "served": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = dict(state)

    def __len__(self) -> int:
        return sum(len(part) for part in self._slices())


class EpisodeLoader(DataLoader):
    """A DataLoader whose position in the epoch goes into checkpoints (Lightning saves loaders with a
    state_dict), so a fit resumed mid-epoch sees the queries the uninterrupted fit would have seen."""

    sampler: GlobalBatchSampler  # always (EpisodeDataModule's loaders)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
