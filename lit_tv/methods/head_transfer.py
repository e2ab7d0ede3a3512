"""MTV's `transfer: heads` outside a fit: a vector's or checkpoint's heads patched with means recomputed over this
run's support episodes (by the `MeanActivations` callback). Where nothing would recompute them the heads would be
patched with zeros and the answers pass for the vector's: refused before the model loads, naming the option."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.trainer.states import TrainerFn


def check_transfer_data(stage: str, data: Any) -> None:
    """Data without support episodes (predict's query file) has nothing to recompute the means over."""
    if not hasattr(data, "support_episodes"):
        raise ValueError(
            f"model.init_args.transfer=heads recomputes the means over the data's support episodes, but "
            f"lit-tv {TrainerFn(stage).value}'s data ({type(data).__name__}) has none: use "
            "--model.init_args.transfer=all (the vector's own means), or test the heads on the task's data"
        )


def check_means_recomputed(stage: str, data: Any, has_means_callback: bool) -> None:
    """The data's support episodes (at least one) and a callback that averages over them."""
    check_transfer_data(stage, data)
    if not data.support_episodes():
        raise ValueError(
            "model.init_args.transfer=heads recomputes the means over the support episodes, but "
            "data.init_args.support_size is 0: give it a positive number of episodes"
        )
    if not has_means_callback:
        raise ValueError(
            "model.init_args.transfer=heads recomputes the means over the support episodes, but this run has no "
            "callback that does: --trainer.callbacks+=lit_tv.callbacks.mean_activations.MeanActivations"
        )
