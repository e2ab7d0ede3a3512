"""Mean head activations over many-shot ICL episodes, computed once before REINFORCE starts."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lit_tv.averaging import mean_recording
from lit_tv.episodes import Episode
from lit_tv.interventions import record_heads
from lit_tv.prompts import PromptTemplate
from lit_tv.vlm import FrozenVLM


def mean_head_activations(trainer: L.Trainer, vlm: FrozenVLM, template: PromptTemplate, episodes: Sequence[Episode],
                          batch_size: int = 8) -> torch.Tensor:
    """Each head's out-projection input at the last prompt position, averaged → fp32 `[layers, heads, head_dim]`.

    Methods that need several means (one per task) call this directly.
    """
    return mean_recording(trainer, vlm, template, episodes, record_heads, batch_size, "mean activations")


class MeanActivations(Callback):
    """Fill the module's `mean_activations` buffer with `mean_head_activations` over the support episodes.

    Skipped when the module already has one (a resumed fit, a loaded vector); run before test too,
    for heads transferred from a vector of another dataset.
    """

    def __init__(self, batch_size: int = 8) -> None:
        self.batch_size = batch_size

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.compute(trainer, pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if getattr(pl_module, "heads_chosen", True):  # without heads the module refuses to test: do not average first
            self.compute(trainer, pl_module)

    def compute(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.mean_activations.any():  # NaN counts as set: refused where it came from, never recomputed
            return
        mean = mean_head_activations(trainer, pl_module.vlm, pl_module.template, trainer.datamodule.support_episodes(),
                                     self.batch_size)
        pl_module.mean_activations.copy_(mean)
