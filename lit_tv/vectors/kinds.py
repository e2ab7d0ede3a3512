"""Task vectors as objects, one class per kind: saved, loaded, checked against a model and applied to it.

`HeadVector` (MTV): mean attention-head activations and the heads they replace. `ResidualVector`
(residual-stream vectors, Function Vectors): one vector per task, replacing or added to one layer's output.
Each kind alone knows its tensors, their shapes and dtypes; the metadata field ``kind`` names the class.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import torch

from lit_tv.interventions.hooks import Hookable, PatchPolicy, patch_residual, replace_heads
from lit_tv.model.layout import Signature
from lit_tv.vectors.base import Dims, TaskVector
from lit_tv.vectors.file import CHECKSUMS, METADATA_CHECKSUMS, TaskVectorError, load_task_vector
from lit_tv.vectors.sources import resolve_source

__all__ = ["HeadVector", "ResidualVector", "TaskVector", "load"]


@dataclass(kw_only=True)
class HeadVector(TaskVector):
    """MTV: per-head means `[layers, heads, head_dim]` (a layer with narrower heads: zeros after its heads' entries,
    as `record_heads` pads them), the replaced heads as (layer, head) index pairs
    `[n, 2]`, and theta `[layers, heads]` (the head-selection logits they came from)."""

    means: torch.Tensor
    heads: torch.Tensor
    theta: torch.Tensor

    kind = "heads"
    tensor_specs = {
        "mean_activations": (("num_layers", "num_heads", "head_dim"), torch.float32),
        "theta": (("num_layers", "num_heads"), torch.float32),
        "heads": ((None, 2), torch.int64),
    }

    @staticmethod
    def indices(mask: torch.Tensor) -> torch.Tensor:
        """A `[layers, heads]` bool mask as (layer, head) index pairs."""
        return mask.nonzero().to(torch.int64).cpu()

    def mask(self) -> torch.Tensor:
        """The heads as a `[layers, heads]` bool mask."""
        mask = torch.zeros(self.theta.shape, dtype=torch.bool)
        mask[self.heads[:, 0], self.heads[:, 1]] = True
        return mask

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"mean_activations": self.means, "theta": self.theta, "heads": self.heads}

    def _check_ranges(self, layout: Signature) -> None:
        for column, dim in enumerate(("num_layers", "num_heads")):
            values, count = self.heads[:, column], cast(int, layout[dim])
            if len(values) and (int(values.min()) < 0 or int(values.max()) >= count):
                raise TaskVectorError(
                    f"{self.where}: 'heads' holds {dim[4:-1]} indices {sorted(set(values.tolist()))}"
                    f", out of range 0..{count - 1}"
                )
        # a layer with narrower heads fills their first entries (`record_heads`): the rest were never recorded
        for layer, size in enumerate(cast(list[int], layout.get("head_dims", []))):
            if self.means[layer, :, size:].any():
                raise TaskVectorError(
                    f"{self.where}: 'mean_activations' of layer {layer} holds values after its heads' {size} entries "
                    f"(the layout's head_dims: {layout['head_dims']}): they were not recorded from this model"
                )

    def scaled_vectors(self) -> dict[str, torch.Tensor]:
        return {"mean_activations": self.means[self.heads[:, 0], self.heads[:, 1]]}

    def patching(
        self, target: Hookable, index: int | list[int] = 0, policy: PatchPolicy | None = None, layer: int | None = None
    ) -> AbstractContextManager:
        if layer is not None:
            raise ValueError(f"{self.where} replaces heads: layer= applies to residual vectors only")
        return replace_heads(target, self.means, self.mask(), policy=policy or self.policy)


@dataclass(kw_only=True)
class ResidualVector(TaskVector):
    """One vector per task, `[tasks, hidden]` (at `layer`) or `[tasks, layers, hidden]` (every layer of the
    extracting model), replacing (``mode="replace"``) or added x `scale` to `layer`'s output at the last
    prompt position. Function vectors are ``add`` vectors at one layer. `provenance`: tensors kept for
    inspection (e.g. FV's heads and indirect effects), verified but never applied."""

    vectors: torch.Tensor
    layer: int | None
    mode: Literal["replace", "add"] = "replace"
    scale: float = 1.0
    provenance: dict[str, torch.Tensor] = field(default_factory=dict)

    kind = "residual"
    tensor_specs = {"vectors": (("tasks", None, "hidden_size"), torch.float32)}
    choices = {**TaskVector.choices, "mode": ("replace", "add")}

    def specs(self) -> dict[str, tuple[Dims, torch.dtype]]:
        if self.vectors.dim() == 2:  # one layer's vectors
            return {"vectors": (("tasks", "hidden_size"), torch.float32)}
        return self.tensor_specs

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"vectors": self.vectors, **self.provenance}

    def metadata(self) -> dict[str, object]:
        return {**super().metadata(), "layer": self.layer, "mode": self.mode, "scale": self.scale}

    def _check_ranges(self, layout: Signature) -> None:
        if self.layer is None:
            return
        layers = cast(int, layout["num_layers"])
        layers = layers if self.vectors.dim() == 2 else min(layers, self.vectors.shape[1])
        if not 0 <= self.layer < layers:
            raise TaskVectorError(f"{self.where}: field 'layer' is {self.layer}, out of range 0..{layers - 1}")

    def scaled_vectors(self) -> dict[str, torch.Tensor]:
        if self.vectors.dim() == 2 or self.layer is None:
            return {"vectors": self.vectors}
        return {"vectors": self.vectors[:, self.layer]}

    def patching(
        self, target: Hookable, index: int | list[int] = 0, policy: PatchPolicy | None = None, layer: int | None = None
    ) -> AbstractContextManager:
        chosen = self.layer if layer is None else layer
        if chosen is None:
            raise ValueError(f"{self.where} stores no layer: pass layer=<a layer index>")
        vector = self.vectors[index][..., chosen, :] if self.vectors.dim() == 3 else self.vectors[index]
        return patch_residual(target, chosen, vector, mode=self.mode, scale=self.scale, policy=policy or self.policy)


KINDS: dict[str, type[TaskVector]] = {kind.kind: kind for kind in (HeadVector, ResidualVector)}


def load(
    source: str | Path, revision: str | None = None, *, kind: type[TaskVector] | None = None, option: str = "source"
) -> TaskVector:
    """Read a task vector (checksums verified), as its kind's object: `source` is a file, a folder holding
    task_vector.safetensors, or a hub id ``user/name[@revision]`` (`lit_tv.vectors.sources`); `kind`: the one
    expected; `option`: the argument's name in errors."""
    found_at = resolve_source(source, revision, option)
    path, name = found_at.path, found_at.label
    try:
        tensors, raw = load_task_vector(path)
    except TaskVectorError as error:
        if found_at.repo_id is None:
            raise
        raise TaskVectorError(f"hub repo {name}: {error}") from error
    # every field read below is popped: what is left is the vector's `extra` (provenance)
    metadata = {key: _decode(value) for key, value in raw.items() if key not in (CHECKSUMS, METADATA_CHECKSUMS)}
    found = KINDS.get(str(metadata.get("kind")))
    if found is None:
        raise TaskVectorError(f"{name}: field 'kind' is {metadata.get('kind')!r}, expected one of {sorted(KINDS)}")
    del metadata["kind"]
    if kind is not None and found is not kind:
        raise TaskVectorError(
            f"task vector {name} was exported by method {metadata.get('method')!r} (a "
            f"{found.kind} vector); this run reads {kind.kind} vectors (field 'kind')"
        )
    missing = sorted(set(found.tensor_specs) - set(tensors))
    if missing:
        raise TaskVectorError(f"task vector {name} has no tensor '{missing[0]}' (it has {sorted(tensors)})")
    common: dict[str, Any] = {
        "tasks": list(metadata.pop("tasks", None) or []),
        "method": str(metadata.pop("method", "")),
        "model": str(metadata.pop("model", "")),
        "revision": metadata.pop("revision", None),
        "layout": metadata.pop("layout", None) or {},
        "fingerprint": metadata.pop("fingerprint", None) or {},
        "policy": metadata.pop("policy", "prompt"),  # files exported before the field were scored on the prompt
        "path": path,
        "hub": None if found_at.repo_id is None else name,
    }
    if found is HeadVector:
        vector: TaskVector = HeadVector(
            means=tensors.pop("mean_activations"), theta=tensors.pop("theta"), heads=tensors.pop("heads"), **common
        )
    else:
        vector = ResidualVector(
            vectors=tensors.pop("vectors"),
            layer=metadata.pop("layer", None),
            mode=metadata.pop("mode", "replace"),
            scale=float(metadata.pop("scale", 1.0)),
            provenance=tensors,
            **common,
        )
    vector.extra = metadata
    vector._check_tensors()
    return vector


def _decode(value: str) -> Any:  # a JSON value
    try:
        return json.loads(value)
    except ValueError:
        return value  # strings are stored as they are
