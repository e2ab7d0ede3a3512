"""What MTV refuses (or warns about) before its long work, naming the option.

A fit whose head search would do nothing, and the queries its final heads are scored on (drawn, their images
checked, before the model loads). `transfer: heads` outside a fit: a vector's or checkpoint's heads patched
with means recomputed over this run's support episodes (by the `MeanActivations` callback); where nothing would
recompute them the heads would be patched with zeros and the answers pass for the vector's.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn

from lit_tv.episodes import Episode


def check_fit_options(trainer: L.Trainer, data: Any) -> None:
    """Steps and training queries the head search needs; several tasks in one fit are warned about (a mixed-task
    vector can be what a study wants to measure, so it is not refused)."""
    if trainer.max_steps == 0 or (trainer.max_steps == -1 and trainer.max_epochs == 0):
        raise ValueError(
            f"trainer.max_steps={trainer.max_steps} / trainer.max_epochs={trainer.max_epochs}: "
            "the REINFORCE head search needs at least one step"
        )
    if not data.train_queries():
        raise ValueError("data.init_args.train_size must be >= 1: the head search scores training queries")
    tasks = list(getattr(data, "tasks", None) or ())
    if len(tasks) > 1:
        rank_zero_warn(
            f"MTV fit on {len(tasks)} tasks {tasks} (data.init_args.tasks): one mean over several tasks carries "
            f"none of them; for a vector per task fit each alone (--data.init_args.tasks=[{tasks[0]}], ...)"
        )


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


def head_selection_queries(options: Any, data: Any) -> list[Episode]:
    """The queries `selection_from` names (none for ``selection: threshold``, which scores nothing)."""
    count = options.selection_queries
    if options.selection == "threshold":
        return []
    if options.selection_from == "reinforce_queries":
        return data.train_queries()[:count]
    if not hasattr(data, "first_train_queries"):
        raise ValueError(
            f"model.init_args.selection_from=train_split scores the final heads on the first records of a training "
            f"split in its file order, which {type(data).__name__} does not have (its episodes are drawn): use "
            "--model.init_args.selection_from=reinforce_queries"
        )
    return data.first_train_queries(count)
