"""Smoke runs (`fast_dev_run`, a `limit_*_batches` or a `max_steps` below the config's) write their checkpoints
and task vector under a ``smoke/`` folder beside the config's paths, never to them: a check that the pipeline
runs must not replace (or pass for) the real run's `last.ckpt` or vector.

Only the paths the config files name are moved; a path given on the command line is the user's choice.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from lit_tv.cli.task_folders import fill_tasks

LIMITS = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches")


def _merged(config_files: Iterable[Any]) -> dict:
    """The config files' top-level sections merged in order (a later file's section wins key by key)."""
    merged: dict[str, dict] = {}
    for config in config_files:
        content = yaml.safe_load(config.get_content() if hasattr(config, "get_content") else Path(config).read_text())
        for section, values in (content or {}).items():
            if isinstance(values, dict):
                merged[section] = {**merged.get(section, {}), **values}
    return merged


def smoke_reason(trainer: Any, configured: dict) -> str | None:
    """Why this trainer runs less than the config asks (None: it runs all of it)."""
    if trainer.fast_dev_run:
        return f"trainer.fast_dev_run={trainer.fast_dev_run}"
    for limit in LIMITS:
        given, asked = getattr(trainer, limit), configured.get(limit, 1.0)
        partial = given > 0 if isinstance(given, int) else 0 < given < 1  # an int counts batches, a float a share
        if partial and (type(given), given) != (type(asked), asked):  # 1 (one batch) is not 1.0 (all)
            return f"trainer.{limit}={given}, the config's {asked}"
    steps = configured.get("max_steps", -1)
    if 0 < trainer.max_steps < steps:
        return f"trainer.max_steps={trainer.max_steps}, below the config's {steps}"
    return None


def smoke_path(path: str | Path) -> Path:
    return Path(path).parent / "smoke" / Path(path).name


def _same(one: str | Path, other: str | Path | None) -> bool:
    return other is not None and os.path.realpath(one) == os.path.realpath(other)


def redirect_smoke_outputs(trainer: Any, model: Any, config_files: Sequence[Any], tasks: str | None) -> str | None:
    """Move a smoke run's checkpoint folders and export off the config's paths (``{tasks}`` in them read as
    `tasks`); the line that says so."""
    if not config_files:
        return None
    configured = fill_tasks(_merged(config_files), tasks)
    reason = smoke_reason(trainer, configured.get("trainer", {}))
    if reason is None:
        return None
    folders = [
        callback.get("init_args", {}).get("dirpath")
        for callback in configured.get("trainer", {}).get("callbacks") or []
        if isinstance(callback, dict)
    ]
    moved = []
    for callback in trainer.checkpoint_callbacks:
        folder = next((folder for folder in folders if _same(callback.dirpath or "", folder)), None)
        if callback.dirpath and folder:
            callback.dirpath = os.path.realpath(smoke_path(callback.dirpath))
            moved.append(str(smoke_path(folder)))
    hparams = getattr(model, "hparams", {})
    export = configured.get("model", {}).get("init_args", {}).get("export")
    if hparams.get("export") and _same(hparams["export"], export):
        hparams["export"] = str(smoke_path(export))
        moved.append(hparams["export"])
    if not moved:
        return None
    return f"smoke run ({reason}): its checkpoints and vector go to {', '.join(moved)}, not the config's paths"
