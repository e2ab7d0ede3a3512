"""Task-vector files and the checks every use of one shares.

A file is safetensors: the tensors, plus string metadata (JSON values) that says what made it. Export writes
atomically and stores a SHA-256 per tensor (metadata ``checksums``) and one per metadata field (``metadata_checksums``:
of every field's stored string: tasks, model, revision, layout, fingerprint, kind, method, policy, layer, mode,
scale, the prompt, ...); reading recomputes them, so a tensor altered or a field edited, added or removed after
export is refused, naming it. Files of the first format (no checksums) are refused with a message to re-export:
their contents cannot be vouched for, and re-exporting takes one ``lit-tv test``. Files exported before
``metadata_checksums`` load with a warning that their metadata is not verified (their tensors are).

Model identity (the ``fingerprint`` field) is `lit_tv.vectors.fingerprint`'s.

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
from transformers import AutoConfig, PreTrainedModel

import lit_tv
from lit_tv.files import atomic_path
from lit_tv.model.layout import Signature, config_head_dims, layout_signature
from lit_tv.model.loading import VLMOptions
from lit_tv.vectors.fingerprint import embedding_row_norms

SCALE_LIMIT = 1e4
CHECKSUMS, METADATA_CHECKSUMS = "checksums", "metadata_checksums"


class TaskVectorError(ValueError):
    """A task-vector file that cannot be used: unreadable, altered, of another method, or with bad tensors."""


class TaskVectorMismatchError(TaskVectorError):
    """A task vector made for another model, layout or task than the one it is given to."""


def layout_from_config(options: VLMOptions) -> Signature:
    """The layout numbers of a model read from its config alone (no weights are loaded), at the options'
    revision: the config of the model the run will load."""
    text = AutoConfig.from_pretrained(
        options.path, trust_remote_code=options.trust_remote_code, revision=options.revision
    ).get_text_config()
    return layout_signature(text.num_attention_heads, config_head_dims(text), text.hidden_size)


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
    """Write atomically (temp file + rename) with a checksum per tensor and per metadata field; no check of the
    contents (the
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
    strings[CHECKSUMS] = json.dumps({key: tensor_checksum(value) for key, value in sorted(tensors.items())})
    strings["lit_tv_version"] = lit_tv.__version__
    strings[METADATA_CHECKSUMS] = json.dumps(metadata_checksums(strings))
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=strings)
    return Path(path)


def metadata_checksums(strings: dict[str, str]) -> dict[str, str]:
    """SHA-256 of each metadata field's stored string (the checksum fields aside: they check themselves)."""
    return {
        key: hashlib.sha256(value.encode()).hexdigest()
        for key, value in sorted(strings.items())
        if key not in (CHECKSUMS, METADATA_CHECKSUMS)
    }


def _saved_checksums(metadata: dict[str, str], field: str, path: str | Path) -> dict[str, str]:
    try:
        saved = json.loads(metadata[field])
    except ValueError as error:
        raise TaskVectorError(f"task vector {path}: field {field!r} is not JSON ({error}): export it again") from error
    if not isinstance(saved, dict):
        raise TaskVectorError(f"task vector {path}: field {field!r} is not a mapping of checksums: export it again")
    return saved


def verify_metadata(metadata: dict[str, str], path: str | Path) -> None:
    """Refuse a metadata field edited, added or removed after export, naming it; a file exported before the
    metadata checksums loads with a warning (its tensors are verified, its fields cannot be)."""
    if METADATA_CHECKSUMS not in metadata:
        warnings.warn(
            f"task vector {path}: no {METADATA_CHECKSUMS!r} in its metadata (exported by an earlier lit_tv): its "
            "tensors are verified but its fields (tasks, model, layer, mode, scale, ...) are not; export it again "
            "to have them checked",
            stacklevel=3,
        )
        return
    saved, own = _saved_checksums(metadata, METADATA_CHECKSUMS, path), metadata_checksums(metadata)
    for field in sorted(saved.keys() | own.keys()):
        if saved.get(field) != own.get(field):
            change = "added" if field not in saved else "removed" if field not in own else "edited"
            raise TaskVectorError(
                f"task vector {path}: field {field!r} was {change} after export (it does not match "
                f"{METADATA_CHECKSUMS!r} saved at export); export it again"
            )


def load_task_vector(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and raw metadata of a file, every tensor and metadata field verified against the checksums
    saved at export."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"task vector file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = dict(file.metadata() or {})
    except Exception as error:  # safetensors raises its own SafetensorError (and OSError) on a bad header
        raise TaskVectorError(f"task vector {path} is not a readable safetensors file: {error}") from error
    if CHECKSUMS not in metadata:
        raise TaskVectorError(
            f"task vector {path}: no 'checksums' in its metadata: it was written by an earlier "
            "lit_tv (or by hand) and cannot be verified; export it again with this version"
        )
    verify_metadata(metadata, path)
    try:
        with safe_open(str(path), framework="pt") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except Exception as error:
        raise TaskVectorError(f"task vector {path}: cannot read its tensors: {error}") from error
    saved = _saved_checksums(metadata, CHECKSUMS, path)
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


def model_scale(model: PreTrainedModel) -> float | None:
    """The median L2 norm of the model's input-embedding rows (None when it has no plain embedding matrix)."""
    rows = embedding_row_norms(model.get_input_embeddings())
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
