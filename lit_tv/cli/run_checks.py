"""Trainer options and data splits that Lightning refuses only with a traceback (a `MisconfigurationException`,
which `lit-tv`'s one-line errors do not catch) or after the model has loaded: checked as soon as the CLI has
them, each naming its option."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.accelerators import Accelerator, CUDAAccelerator, MPSAccelerator
from lightning.pytorch.utilities.model_helpers import is_overridden

# the accelerator names that need a GPU, and the backends each may run on
GPU_ACCELERATORS: dict[str, tuple[type[Accelerator], ...]] = {
    "gpu": (CUDAAccelerator, MPSAccelerator),
    "cuda": (CUDAAccelerator,),
    "mps": (MPSAccelerator,),
}
# the DataModule hook each `lit-tv` subcommand reads its queries from
SPLITS = {"fit": "train", "validate": "val", "test": "test", "predict": "predict"}


def check_trainer_options(trainer: Mapping[str, Any]) -> None:
    """Refuse a GPU accelerator on a machine without one, no devices, and a negative step limit other than -1."""
    accelerator = trainer.get("accelerator")
    if isinstance(accelerator, str) and accelerator in GPU_ACCELERATORS:
        if not any(backend.is_available() for backend in GPU_ACCELERATORS[accelerator]):
            raise ValueError(
                f"trainer.accelerator={accelerator}: this machine has no GPU that torch can use; "
                "use --trainer.accelerator=cpu (or auto)"
            )
    devices = trainer.get("devices")
    none = devices == 0 or devices == [] or (isinstance(devices, str) and devices.strip() == "0")
    if none or (isinstance(devices, int) and devices < -1):
        raise ValueError(
            f"trainer.devices={devices!r}: a run needs at least one device; give a count >= 1, a list of device "
            "ids, -1 (all of them) or auto"
        )
    max_steps = trainer.get("max_steps")
    if isinstance(max_steps, int) and max_steps < -1:
        raise ValueError(f"trainer.max_steps must be -1 (no limit) or >= 0, got {max_steps}")


def check_data_split(subcommand: str, data: L.LightningDataModule | None) -> None:
    """Refuse a run over data without the split it reads (Lightning would raise inside its loop)."""
    split = SPLITS[subcommand]
    if data is None or is_overridden(f"{split}_dataloader", data, L.LightningDataModule):
        return
    name = f"{type(data).__module__}.{type(data).__qualname__}"
    use = (
        "answer a jsonl of questions with lit_tv.data.query_file.QueryFile (configs/shapes/predict.yaml)"
        if subcommand == "predict"
        else "use a benchmark's DataModule (e.g. configs/shapes/mtv.yaml's); a query file is for lit-tv predict"
    )
    raise ValueError(f"lit-tv {subcommand} reads the {split} split, but data.class_path {name} has none: {use}")
