"""An `--overwrite` fit writes its checkpoints beside the earlier fit's and replaces them only when it succeeds.

Deleting the earlier checkpoints when the run starts would lose them to a fit that then fails (an option refused
late), is stopped or is killed. Instead each checkpoint folder's checkpoints go to ``<folder>.partial`` (the same
command with ``--ckpt_path last`` resumes from there) and move into ``<folder>`` once the fit has ended well;
the vector is written atomically at the fit's end, so the earlier one stays until then too.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lit_tv.files import OutputLock, partial_path, remove_output
from lit_tv.methods.checkpoints import checkpoint_folders


class ReplaceOnSuccess(Callback):
    """Moves an `--overwrite` fit's checkpoint folders aside (`stage`) and back over the earlier ones on success.

    Lightning calls `teardown` only for a run that ended well (a failed or stopped one goes through
    `on_exception`), and calls the callbacks' before the module's; this callback holds the final and staging
    folders' locks until the move is done.
    """

    def __init__(self) -> None:
        self.folders: dict[Path, Path] = {}  # final folder -> its staging folder
        self._lock: OutputLock | None = None

    @classmethod
    def stage(cls, trainer: L.Trainer) -> ReplaceOnSuccess | None:
        """Point each checkpoint folder of the trainer at its staging folder; None when there is none to move."""
        callback = cls()
        for checkpoints in checkpoint_folders(trainer):
            if checkpoints.dirpath:
                final = Path(checkpoints.dirpath)
                checkpoints.dirpath = str(partial_path(final))
                callback.folders[final] = Path(checkpoints.dirpath)
        return callback if callback.folders else None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Claim the final and staging folders; what an earlier, unfinished `--overwrite` fit left in a staging
        folder goes, unless this fit resumes from a checkpoint."""
        if trainer.global_rank == 0:
            staging = list(self.folders.values())
            self._lock = OutputLock(
                [*self.folders, *staging],
                "the ModelCheckpoint dirpath",
                overwrite=True,
                continued=staging if getattr(pl_module, "resumes_fit", False) else [],  # `fit --ckpt_path`
                scratch=staging,
            )
            self._lock.acquire()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._lock is None:
            return
        for checkpoints in checkpoint_folders(trainer):
            self._replace(checkpoints)
        self._lock.release()
        self._lock = None

    def _replace(self, checkpoints: ModelCheckpoint) -> None:
        """The earlier checkpoints out, this fit's in; the callback's paths follow its files."""
        staging = Path(str(checkpoints.dirpath))
        final = next((final for final, staged in self.folders.items() if staged == staging), None)
        if final is None:
            return
        remove_output(final)
        final.mkdir(parents=True, exist_ok=True)
        for checkpoint in sorted(staging.glob("*.ckpt")):
            os.replace(checkpoint, final / checkpoint.name)
        if staging.is_dir() and not any(staging.iterdir()):
            staging.rmdir()
        checkpoints.dirpath = str(final)
        moved = {str(staging / name): str(final / name) for name in os.listdir(final)}
        checkpoints.best_model_path = moved.get(checkpoints.best_model_path, checkpoints.best_model_path)
        checkpoints.last_model_path = moved.get(checkpoints.last_model_path, checkpoints.last_model_path)
        checkpoints.best_k_models = {moved.get(path, path): score for path, score in checkpoints.best_k_models.items()}
        checkpoints.kth_best_model_path = moved.get(checkpoints.kth_best_model_path, checkpoints.kth_best_model_path)

    def saved_note(self) -> str:
        """What a stopped `--overwrite` fit leaves: the earlier outputs as they were."""
        return f"the earlier fit's checkpoints in {', '.join(map(str, self.folders))} and its vector are unchanged"
