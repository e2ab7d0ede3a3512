"""What a checkpoint must agree with before a run uses it.

LightningCLI (2.6) re-applies a checkpoint's saved hyper-parameters over the config and the command
line, so `lit-tv test ... --ckpt_path last.ckpt --model.init_args.test_heads random` used to test the
*selected* heads. lit_tv's CLI does not: the options given are the options that run. Before any
weights load, a checkpoint of another method or layout is refused, and a resumed fit must be given the
options of the fit it continues (else it would not be the same run).

A checkpoint records its model's weights fingerprint (`lit_tv.vectors.fingerprint`), checked as a task vector's
is once the weights load: a checkpoint of other weights (another model, or the same folder's weights changed
since the fit) is refused unless ``allow_other_model`` (then a warning); a model moved to another folder matches.
Checkpoints written before the fingerprint are checked by model name (a path or hub id) only, with a warning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from transformers import PreTrainedModel

from lit_tv.files import atomic_path
from lit_tv.model.layout import Signature
from lit_tv.model.loading import BUILTIN_MODELS, VLMOptions
from lit_tv.vectors.file import layout_from_config, require_finite
from lit_tv.vectors.fingerprint import fingerprint_difference
from lit_tv.vectors.fitted_on import FittedOn


def checkpoint_folders(trainer: L.Trainer) -> list[ModelCheckpoint]:
    """The run's `ModelCheckpoint` callbacks (Lightning types them as any `Checkpoint`, which has no folder)."""
    return [callback for callback in trainer.checkpoint_callbacks if isinstance(callback, ModelCheckpoint)]


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not belong to the run it was given to; the message names the option."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, through a temporary file renamed over the target: a fit killed
    while saving leaves the previous `last.ckpt` whole (Lightning writes the target in place)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # a remote filesystem: fsspec's own semantics
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_path(path) as temporary:
            super().save_checkpoint(checkpoint, temporary, storage_options)


class CheckpointedMethod(Protocol):
    """What a checkpoint is checked against: a method's model options and hyper-parameters (its class names it).

    Typed by what it has, not by `FrozenVLMMethod`: the methods sit above this module and call it.
    """

    model_options: VLMOptions

    @property
    def hparams(self) -> Mapping[str, Any]: ...


def model_identity(name: str) -> str:
    """A model name two runs compare: built-in names and hub ids as given, local folders as absolute paths."""
    local = Path(name).expanduser()
    return name if name in BUILTIN_MODELS or not local.exists() else str(local.resolve())


def method_path(method: object) -> str:
    return f"{type(method).__module__}.{type(method).__qualname__}"


def checkpoint_entry(
    method: CheckpointedMethod, layout: Signature, fingerprint: dict[str, object], datamodule: object
) -> dict[str, Any]:
    """What `lit-tv` stores in every checkpoint to recognise it later (`checkpoint["lit_tv"]`)."""
    data = FittedOn.of(datamodule)  # a fit's heads and means belong to its benchmark and tasks
    return {
        "method": method_path(method),
        "model": model_identity(method.model_options.name),
        "layout": layout,
        "fingerprint": fingerprint,
        "data": {"benchmark": data.benchmark, "tasks": list(data.tasks)},
    }


def fitted_on(checkpoint: Mapping[str, Any]) -> FittedOn | None:
    """The benchmark and tasks a checkpoint was fitted on (None: written before checkpoints recorded them)."""
    data = checkpoint.get("lit_tv", {}).get("data")
    return None if data is None else FittedOn(tuple(data["tasks"]), data["benchmark"])


def resolve_checkpoint(trainer: L.Trainer, ckpt_path: str | Path | None) -> Path | None:
    """The file `ckpt_path` names: a path, or ``last`` (the newest ``last*.ckpt`` of the checkpoint callbacks).

    None for no checkpoint and for Lightning's other names (``best``, ``hpc``, ``registry:...``), which only
    Lightning resolves; the module checks those when they load (`FrozenVLMMethod.on_load_checkpoint`).
    """
    if ckpt_path is None or str(ckpt_path) in ("best", "hpc") or str(ckpt_path).startswith("registry"):
        return None
    if str(ckpt_path) != "last":
        path = Path(ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"--ckpt_path: checkpoint file not found: {path}")
        return path
    candidates = [
        Path(found)
        for callback in checkpoint_folders(trainer)
        for found in callback._find_last_checkpoints(trainer)  # private: resolves an unset dirpath as fit would
    ]
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


def _flat(options: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Nested options as ``prefix.key.subkey`` -> value (what a command line would name them)."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if key.startswith("_"):  # LightningCLI's own bookkeeping (_class_path, _instantiator)
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def differences(saved: Mapping[str, Any], given: Mapping[str, Any], prefix: str) -> list[str]:
    """``option: checkpoint value -> this run's value`` for every option that differs."""
    old, new = _flat(saved, prefix), _flat(given, prefix)
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def check_identity(
    checkpoint: Mapping[str, Any],
    path: Path | str,
    method: CheckpointedMethod,
    layout: Signature,
    model: PreTrainedModel | None = None,
) -> None:
    """Refuse a checkpoint written by another method, or for another layout than `method`'s; for other weights
    than `model`'s once it is loaded (the fingerprint; a checkpoint without one: another model name, at once)."""
    entry = checkpoint.get("lit_tv")
    if entry is None:
        raise CheckpointMismatchError(f"--ckpt_path: {path} was not written by lit-tv fit (no 'lit_tv' entry)")
    if entry["method"] != method_path(method):
        raise CheckpointMismatchError(
            f"--ckpt_path: {path} holds a {entry['method']} fit but this run's model.class_path is "
            f"{method_path(method)}; use that method's config or its own checkpoint"
        )
    name = method.model_options.name
    fingerprint = entry.get("fingerprint")
    if entry["model"] != model_identity(name):
        if fingerprint is None:
            raise CheckpointMismatchError(
                f"--ckpt_path: {path} was fitted on model {entry['model']} but model.init_args.model.name is "
                f"{name}; its heads and means belong to that model"
            )
        if model is None:
            rank_zero_info(
                f"--ckpt_path: {path} was fitted on model {entry['model']}, this run's is {name}: "
                "their weights are compared once they load"
            )
    if entry["layout"] != layout:
        raise CheckpointMismatchError(
            f"--ckpt_path: {path} was fitted on layout {entry['layout']}; "
            f"model.init_args.model.name {name} has layout {layout}"
        )
    if model is not None:
        _check_weights(fingerprint, entry["model"], path, method, model)


def _check_weights(
    fingerprint: dict[str, object] | None,
    fitted_on_model: str,
    path: Path | str,
    method: CheckpointedMethod,
    model: PreTrainedModel,
) -> None:
    """The checkpoint's fingerprint against the loaded weights, as a task vector's is checked."""
    if fingerprint is None:
        rank_zero_warn(
            f"--ckpt_path: {path} was written before checkpoints recorded their model's weights fingerprint: "
            f"its model is checked by name only ({fitted_on_model}), not by its weights; fit again to check them"
        )
        return
    difference = fingerprint_difference(fingerprint, model)
    if difference is None:
        return
    message = (
        f"--ckpt_path: {path} was fitted on model {fitted_on_model} and does not match the weights of "
        f"model.init_args.model.name {method.model_options.name} (its 'lit_tv' entry's field 'fingerprint': "
        f"{difference}); its heads and means belong to those weights"
    )
    if not method.hparams.get("allow_other_model", False):
        raise CheckpointMismatchError(
            f"{message}; to use it on purpose, model.init_args.allow_other_model=true (a fit from scratch: "
            "without --ckpt_path and with --overwrite)"
        )
    rank_zero_warn(f"{message}; used anyway (allow_other_model)")


def check_checkpoint(
    path: Path, method: CheckpointedMethod, datamodule: L.LightningDataModule | None, stage: str
) -> list[str]:
    """Refuse a checkpoint of another method or model, one fitted on other tasks (``validate`` / ``test``), or
    (``fit``) a resume with other options.

    Returns the options where a test / validate / predict run differs from the checkpoint's fit:
    those runs use the options they were given (the caller says so).
    """
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except Exception as error:  # torch raises RuntimeError, pickle and zip errors alike for a bad file
        raise CheckpointMismatchError(f"--ckpt_path: cannot read checkpoint {path}: {error}") from error
    check_identity(checkpoint, path, method, layout_from_config(method.model_options))
    for name, tensor in checkpoint.get("state_dict", {}).items():
        require_finite(tensor, name, f"--ckpt_path: {path}")
    changed = differences(checkpoint.get("hyper_parameters", {}), method.hparams, "model.init_args.")
    fitted = fitted_on(checkpoint)
    if stage in ("validate", "test") and datamodule is not None and fitted is not None:  # predict: the user's queries
        # other tasks (or another benchmark) are refused unless `allow_other_task` (then a warning), as a vector's are
        fitted.check(
            FittedOn.of(datamodule),
            f"--ckpt_path: {path} was fitted on",
            bool(method.hparams.get("allow_other_task", False)),
            CheckpointMismatchError,
        )
    if stage == "fit" and datamodule is not None:  # other options at test time are a use, not a mistake
        changed += differences(checkpoint.get("datamodule_hyper_parameters", {}), datamodule.hparams, "data.init_args.")
    if stage == "fit" and changed:
        raise CheckpointMismatchError(
            f"--ckpt_path: resuming {path} needs the options of the fit it continues; these differ "
            f"(checkpoint -> given): {'; '.join(changed)}. Give the same options, or start a new fit without "
            "--ckpt_path and with --overwrite (it replaces this fit's checkpoints and vector)"
        )
    return changed
