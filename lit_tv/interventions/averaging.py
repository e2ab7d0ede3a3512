"""Means of recorded activations over many episodes, split across processes.

MTV's head means, Function Vectors' per-task head means and the cross-modal residual vectors are
all this computation with a different recorder. It sits below the methods and callbacks that use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import lightning as L
import torch
from tqdm.auto import tqdm

from lit_tv.episodes import Episode
from lit_tv.interventions.hooks import Recording, record_heads
from lit_tv.model.vlm import SUPPORT_SHOTS, FrozenVLM
from lit_tv.prompts import PromptTemplate

Recorder = Callable[[FrozenVLM], AbstractContextManager[Recording]]


def mean_recording(
    trainer: L.Trainer,
    vlm: FrozenVLM,
    template: PromptTemplate,
    episodes: Sequence[Episode],
    record: Recorder,
    batch_size: int = 8,
    description: str = "averaging",
) -> torch.Tensor:
    """The mean over `episodes` of what `record` captures at each prompt's last position (fp32).

    Every rank runs every `world_size`-th episode in batches; the fp32 sums and the count are
    all-reduced, so every rank returns the same mean over all episodes, each counted once. Its bar shows on rank 0
    of a run with a progress bar.
    """
    if len(episodes) < trainer.world_size:
        raise ValueError(
            f"{len(episodes)} episodes cannot be shared by {trainer.world_size} processes: "
            "raise data.init_args.support_size"
        )
    device = trainer.strategy.root_device
    total: torch.Tensor | float = 0.0
    count = torch.zeros((), device=device)
    mine = episodes[trainer.global_rank :: trainer.world_size]
    for start in tqdm(
        range(0, len(mine), batch_size),
        desc=description,
        disable=trainer.global_rank != 0 or trainer.progress_bar_callback is None,
    ):
        batch = mine[start : start + batch_size]
        with torch.no_grad(), record(vlm) as recording:
            vlm.last_logits(vlm.build_inputs(batch, template, shots_option=SUPPORT_SHOTS))
        total = total + recording.value.float().sum(0).to(device)
        count += len(batch)
    return trainer.strategy.reduce(total, reduce_op="sum") / trainer.strategy.reduce(count, reduce_op="sum")


def mean_head_activations(
    trainer: L.Trainer, vlm: FrozenVLM, template: PromptTemplate, episodes: Sequence[Episode], batch_size: int = 8
) -> torch.Tensor:
    """Each head's out-projection input at the last prompt position, averaged → fp32 `[layers, heads, head_dim]`
    (a layer with narrower heads: zeros after its entries, as `record_heads` pads them).

    The `MeanActivations` callback fills MTV's buffer with it; methods that need several means (one per task)
    call it directly.
    """
    return mean_recording(trainer, vlm, template, episodes, record_heads, batch_size, "mean activations")
