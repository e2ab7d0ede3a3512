"""MTV's mean head activations over many-shot ICL episodes, filled in once before REINFORCE starts."""

from __future__ import annotations

from typing import cast

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from lit_tv.data.datamodules import datamodule_of
from lit_tv.interventions.averaging import mean_head_activations
from lit_tv.methods.mtv import MTV


class MeanActivations(Callback):
    """Fill the module's `mean_activations` buffer with `mean_head_activations` over the support episodes.

    Skipped when the module already has one (a resumed fit, a loaded vector); run before a test or a
    validation too, for heads transferred (`transfer: heads`) from a vector or checkpoint of another dataset.
    """

    def __init__(self, batch_size: int = 8) -> None:
        self.batch_size = batch_size

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Runs before the module's `setup`, which refuses `transfer: heads` where no callback fills the means."""
        cast(MTV, pl_module).means_recomputed = True

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.compute(trainer, cast(MTV, pl_module))

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if getattr(pl_module, "heads_chosen", True):  # without heads the module refuses to test: do not average first
            self.compute(trainer, cast(MTV, pl_module))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # a fit's validation has the fit's own means
            self.on_test_start(trainer, pl_module)

    def compute(self, trainer: L.Trainer, pl_module: MTV) -> None:
        if pl_module.mean_activations.any():  # NaN counts as set: refused where it came from, never recomputed
            return
        mean = mean_head_activations(
            trainer, pl_module.vlm, pl_module.template, datamodule_of(trainer).support_episodes(), self.batch_size
        )
        pl_module.mean_activations.copy_(mean)
