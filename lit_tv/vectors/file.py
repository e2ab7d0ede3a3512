"""Task-vector files and the checks every use of one shares.

A file is safetensors: the tensors, plus string metadata (JSON values) that says what made it. Export writes
atomically and stores a SHA-256 per tensor (metadata ``checksums``); reading recomputes them, so a tensor
altered after export is refused, naming it. Files of the first format (no checksums) are refused with a
message to re-export: their contents cannot be vouched for, and re-exporting takes one ``lit-tv test``.

Model identity is a *fingerprint*, cheap to take from a loaded model: its text config's ``model_type`` and
``vocab_size`` and the Frobenius norms of its input and output embeddings (found through the model's own
accessors). Two models match when the strings are equal and both norms agree to 1% (so a bf16 load matches
its fp32 export; embeddings stay unquantized under 4-bit loading). A model moved to another folder still
matches; a same-shaped model with other weights does not.

Scale: a vector's norms are compared with the model's own scale, the median L2 norm of its input-embedding
rows (the residual stream's scale where it starts). Any norm more than ``SCALE_LIMIT`` (10^4) times above or
below it is refused: values orders of magnitude off are a broken export, not a task.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import AutoConfig, PreTrainedModel

import lit_tv
from lit_tv.files import atomic_path
from lit_tv.model.loading import VLMOptions

SCALE_LIMIT = 1e4
FINGERPRINT_TOLERANCE = 0.01


class TaskVectorError(ValueError):
    """A task-vector file that cannot be used: unreadable, altered, of another method, or with bad tensors."""


class TaskVectorMismatchError(TaskVectorError):
    """A task vector made for another model, layout or task than the one it is given to."""


def layout_from_config(options: VLMOptions) -> dict[str, int]:
    """The layout numbers of a model read from its config alone (no weights are loaded), at the options'
    revision: the config of the model the run will load."""
    text = AutoConfig.from_pretrained(
        options.path, trust_remote_code=options.trust_remote_code, revision=options.revision
    ).get_text_config()
    heads = text.num_attention_heads
    return {
        "num_layers": text.num_hidden_layers,
        "num_heads": heads,
        "head_dim": getattr(text, "head_dim", None) or text.hidden_size // heads,
        "hidden_size": text.hidden_size,
    }


def require_finite(tensor: torch.Tensor, name: str, where: str) -> None:
    """Refuse NaN / inf: patched into a model they give a number, not an error."""
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise TaskVectorError(f"{where}: '{name}' holds {bad} NaN or infinite values of {tensor.numel()}")


def tensor_checksum(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes."""
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_vector_file(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, object], overwrite: bool = False
) -> Path:
    """Write atomically (temp file + rename) with a checksum per tensor; no check of the contents (the
    kinds' `save` checks them). An existing file is replaced only with ``overwrite`` (runs pass it once their
    output lock has cleared the path: `--overwrite`, or the run's own file), and then it says so."""
    if Path(path).exists():
        written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(Path(path).stat().st_mtime))
        if not overwrite:
            raise FileExistsError(
                f"task vector {path} already exists (written {written}): pass overwrite=True to replace it, "
                "or save to another path"
            )
        warnings.warn(f"replacing the task vector {path} written {written} by an earlier run", stacklevel=2)
    tensors = {key: value.detach().cpu().contiguous() for key, value in tensors.items()}
    strings = {key: value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()}
    strings["checksums"] = json.dumps({key: tensor_checksum(value) for key, value in sorted(tensors.items())})
    strings["lit_tv_version"] = lit_tv.__version__
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=strings)
    return Path(path)


def load_task_vector(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and raw metadata of a file, every tensor verified against the checksum saved at export."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"task vector file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = dict(file.metadata() or {})
    except Exception as error:  # safetensors raises its own SafetensorError (and OSError) on a bad header
        raise TaskVectorError(f"task vector {path} is not a readable safetensors file: {error}") from error
    if "checksums" not in metadata:
        raise TaskVectorError(
            f"task vector {path}: no 'checksums' in its metadata: it was written by an earlier "
            "lit_tv (or by hand) and cannot be verified; export it again with this version"
        )
    try:
        with safe_open(str(path), framework="pt") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except Exception as error:
        raise TaskVectorError(f"task vector {path}: cannot read its tensors: {error}") from error
    saved = json.loads(metadata["checksums"])
    if sorted(saved) != sorted(tensors):
        raise TaskVectorError(
            f"task vector {path}: field 'checksums' lists tensors {sorted(saved)}, the file holds "
            f"{sorted(tensors)}: altered after export; export it again"
        )
    for key, tensor in tensors.items():
        if tensor_checksum(tensor) != saved[key]:
            raise TaskVectorError(
                f"task vector {path}: tensor '{key}' does not match its checksum saved at export "
                "(field 'checksums'): altered after export; export it again"
            )
    return tensors, metadata


def _embedding_row_norms(module: nn.Module | None) -> torch.Tensor | None:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.is_meta:
        return None
    return torch.linalg.vector_norm(weight.detach(), dim=1, dtype=torch.float32)


def model_fingerprint(model: PreTrainedModel) -> dict[str, object]:
    """What identifies a model's weights cheaply (see the module doc): config type, vocabulary, embedding norms."""
    text = model.config.get_text_config()
    norms = {}
    for name, module in (
        ("input_embedding_norm", model.get_input_embeddings()),
        ("output_embedding_norm", model.get_output_embeddings()),
    ):
        rows = _embedding_row_norms(module)
        norms[name] = None if rows is None else float(rows.square().sum().sqrt())
    return {"model_type": getattr(text, "model_type", ""), "vocab_size": getattr(text, "vocab_size", None), **norms}


def fingerprint_difference(saved: dict[str, object], model: PreTrainedModel) -> str | None:
    """Where `model` differs from a saved fingerprint (None when it matches)."""
    own = model_fingerprint(model)
    for key, value in saved.items():
        mine = own.get(key)
        if isinstance(value, float) and isinstance(mine, float):
            if abs(value - mine) > FINGERPRINT_TOLERANCE * max(abs(value), abs(mine)):
                return f"{key} {value:.6g} in the file, {mine:.6g} in this model"
        elif value != mine:
            return f"{key} {value!r} in the file, {mine!r} in this model"
    return None


def model_scale(model: PreTrainedModel) -> float | None:
    """The median L2 norm of the model's input-embedding rows (None when it has no plain embedding matrix)."""
    rows = _embedding_row_norms(model.get_input_embeddings())
    return None if rows is None else float(rows.median())


def require_plausible_scale(vectors: torch.Tensor, name: str, where: str, scale: float | None) -> None:
    """Refuse vectors (rows of the last dim) whose L2 norms lie more than SCALE_LIMIT times off `scale`."""
    if scale is None or scale <= 0 or vectors.numel() == 0:
        return
    norms = torch.linalg.vector_norm(vectors.float(), dim=-1).flatten()
    low, high = float(norms.min()), float(norms.max())
    if high > scale * SCALE_LIMIT or low < scale / SCALE_LIMIT:
        raise TaskVectorError(
            f"{where}: '{name}' has vector norms from {low:.3g} to {high:.3g}, more than {SCALE_LIMIT:.0e} times off "
            f"this model's scale (median input-embedding norm {scale:.3g}): not a plausible task vector"
        )
