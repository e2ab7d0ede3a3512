"""Task vectors as safetensors files: tensors plus string metadata, written atomically, checked on load."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoConfig

import lit_tv
from lit_tv.files import atomic_path
from lit_tv.loading import resolve_model_path


class TaskVectorMismatchError(ValueError):
    """A task vector made for another model layout."""


def layout_from_config(model: str, trust_remote_code: bool = False) -> dict[str, int]:
    """The layout numbers of a model read from its config alone (no weights are loaded)."""
    text = AutoConfig.from_pretrained(resolve_model_path(model), trust_remote_code=trust_remote_code).get_text_config()
    heads = text.num_attention_heads
    return {"num_layers": text.num_hidden_layers, "num_heads": heads,
            "head_dim": getattr(text, "head_dim", None) or text.hidden_size // heads, "hidden_size": text.hidden_size}


def save_task_vector(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, object]) -> Path:
    """Write atomically (temp file + rename): an interrupted export never leaves a half file. Replacing a
    file says so (it is another run's; a run that is still writing it has been refused at its start)."""
    if Path(path).exists():
        written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(Path(path).stat().st_mtime))
        warnings.warn(f"replacing the task vector {path} written {written} by an earlier run", stacklevel=2)
    strings = {key: value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()}
    strings["lit_tv_version"] = lit_tv.__version__
    tensors = {key: value.detach().cpu().contiguous() for key, value in tensors.items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=strings)
    return Path(path)


class TaskVectorError(ValueError):
    """A task-vector file that cannot be used: unreadable, of another method, or with missing or bad tensors."""


# The tensors each method exports and their shapes, by layout field ("tasks": one row per task in the
# 'tasks' metadata; None: any size, e.g. the layers of an LLM -> VLM extractor).
EXPECTED_TENSORS: dict[str, dict[str, tuple[str | None, ...]]] = {
    "mtv": {"mean_activations": ("num_layers", "num_heads", "head_dim"), "theta": ("num_layers", "num_heads"),
            "selected_heads": ("num_layers", "num_heads")},
    "residual": {"vectors": ("tasks", None, "hidden_size")},
    "function_vectors": {"function_vectors": ("tasks", "hidden_size"), "heads": ("tasks", "num_layers", "num_heads"),
                         "aie": ("tasks", "num_layers", "num_heads"),
                         "mean_activations": ("tasks", "num_layers", "num_heads", "head_dim")},
}


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task vector file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as file:
            return dict(file.metadata() or {})
    except Exception as error:  # safetensors raises its own SafetensorError (and OSError) on a bad header
        raise TaskVectorError(f"task vector {path} is not a readable safetensors file: {error}") from error


def load_task_vector(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    metadata = read_metadata(path)
    try:
        with safe_open(str(path), framework="pt") as file:
            return {key: file.get_tensor(key) for key in file.keys()}, metadata
    except Exception as error:
        raise TaskVectorError(f"task vector {path}: cannot read its tensors: {error}") from error


def require_finite(tensor: torch.Tensor, name: str, where: str) -> None:
    """Refuse NaN / inf: patched into a model they give a number, not an error."""
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise TaskVectorError(f"{where}: '{name}' holds {bad} NaN or infinite values of {tensor.numel()}")


def check_layout(path: str | Path, layout: dict[str, int]) -> None:
    """Refuse a vector whose layers/heads/dims differ from the model's, naming both."""
    metadata = read_metadata(path)
    if "layout" not in metadata:
        raise TaskVectorMismatchError(f"{path}: no 'layout' in its metadata; not a lit_tv task vector")
    saved = json.loads(metadata["layout"])
    if saved != layout:
        raise TaskVectorMismatchError(
            f"task vector {path} was made for {metadata.get('model', 'another model')} with layout {saved}; "
            f"this model's layout is {layout}")


def check_task_vector(path: str | Path, method: str, layout: dict[str, int]) -> None:
    """Everything a run needs from a vector file, checked before the model loads: readable, exported by
    `method`, for this layout, with the tensors `method` exports in their shapes, all finite."""
    check_layout(path, layout)
    tensors, metadata = load_task_vector(path)
    if metadata.get("method") != method:
        raise TaskVectorError(f"task vector {path} was exported by method {metadata.get('method')!r}; "
                              f"this run's method reads {method!r} vectors")
    sizes = {**layout, "tasks": len(json.loads(metadata.get("tasks", "[]")))}
    for name, dims in EXPECTED_TENSORS[method].items():
        if name not in tensors:
            raise TaskVectorError(f"task vector {path} has no tensor '{name}' (it has {sorted(tensors)})")
        shape = tuple(tensors[name].shape)
        if len(shape) != len(dims) or any(dim is not None and size != sizes[dim]
                                          for size, dim in zip(shape, dims, strict=True)):
            expected = tuple("any" if dim is None else f"{dim}={sizes[dim]}" for dim in dims)
            raise TaskVectorError(f"task vector {path}: '{name}' has shape {shape}, expected {expected}")
        require_finite(tensors[name], name, f"task vector {path}")


def load_vectors_by_task(path: str | Path, key: str, tasks: Sequence[str]
                         ) -> tuple[dict[str, torch.Tensor], int | None]:
    """One saved vector per task (`key` stacks them in the order of the 'tasks' metadata), and the saved layer.

    A task the file lacks is named in the error.
    """
    tensors, metadata = load_task_vector(path)
    saved = dict(zip(json.loads(metadata["tasks"]), tensors[key], strict=True))
    missing = sorted(set(tasks) - set(saved))
    if missing:
        raise ValueError(f"task vector {path} has no vector for tasks {missing} (it has {sorted(saved)})")
    return saved, json.loads(metadata.get("layer", "null"))
