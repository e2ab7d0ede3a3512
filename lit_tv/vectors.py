"""Task vectors as objects, one class per kind: saved, loaded, checked against a model and applied to it.

`HeadVector` (MTV): mean attention-head activations and the heads they replace. `ResidualVector`
(residual-stream vectors, Function Vectors): one vector per task, replacing or added to one layer's output.
Each kind alone knows its tensors, their shapes and dtypes; the metadata field ``kind`` names the class.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch import nn

from lit_tv.interventions import PatchPolicy, patch_residual, replace_heads
from lit_tv.layout import Layout, discover_layout
from lit_tv.task_vectors import (
    TaskVectorError,
    TaskVectorMismatchError,
    fingerprint_difference,
    load_task_vector,
    model_fingerprint,
    model_scale,
    require_finite,
    require_plausible_scale,
    write_vector_file,
)

# a tensor's dims by layout field ("tasks": one per task; "heads": one per selected head; None: any size)
Dims = tuple[str | int | None, ...]


@dataclass(frozen=True)
class HookedModel:
    """What the intervention hooks need from a model: the model and its layout (see `lit_tv.interventions`)."""

    model: nn.Module
    layout: Layout

    @property
    def device(self) -> torch.device:
        return self.layout.lm_head.weight.device


def _refuse_right_padding(module: nn.Module, args: tuple, kwargs: dict) -> None:
    mask = kwargs.get("attention_mask")
    if mask is not None and mask.dim() == 2 and not bool(mask[:, -1].all()):
        raise ValueError(
            "a task vector patches position -1, the last prompt token only in a left-padded batch, "
            "but this batch is right-padded: set tokenizer.padding_side = 'left' "
            "(processor.tokenizer.padding_side for a VLM) before building the inputs"
        )


@dataclass(kw_only=True)
class TaskVector:
    """What every kind carries: its tasks, the method and model that made it, and where it was read from."""

    tasks: list[str]
    method: str
    model: str = ""
    layout: dict[str, int] = field(default_factory=dict)
    fingerprint: dict[str, object] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)  # provenance (benchmark, shots, seed, ...)
    path: Path | None = None

    kind: ClassVar[str]
    tensor_specs: ClassVar[dict[str, tuple[Dims, torch.dtype]]]

    @property
    def where(self) -> str:
        return f"task vector {self.path}" if self.path else "task vector"

    def tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def specs(self) -> dict[str, tuple[Dims, torch.dtype]]:
        """The kind's tensors: name -> (dims, dtype)."""
        return self.tensor_specs

    def kind_metadata(self) -> dict[str, object]:
        return {}

    def with_model(self, model: nn.Module, name: str) -> TaskVector:
        """Stamp the model it was made with (name, layout, fingerprint), as an export does."""
        self.model, self.layout, self.fingerprint = name, discover_layout(model).signature(), model_fingerprint(model)
        return self

    def save(self, path: str | Path) -> Path:
        """Write the vector with its metadata and checksums, after the checks that need no model."""
        self.path = Path(path)
        self._check_tensors(self.layout)
        return write_vector_file(path, self.tensors(), self.metadata())

    def metadata(self) -> dict[str, object]:
        """What the file's metadata holds besides the checksums."""
        return {
            **self.extra,
            "kind": self.kind,
            "method": self.method,
            "model": self.model,
            "layout": self.layout,
            "fingerprint": self.fingerprint,
            "tasks": self.tasks,
            **self.kind_metadata(),
        }

    # ---- checks --------------------------------------------------------------------------------

    def _check_tensors(self, layout: dict[str, int] | None = None) -> None:
        """Every tensor of the kind of its dtype and shape (sizes of `layout` when given, else only their number
        of dims and tasks), all finite."""
        sizes = {**(layout or {}), "tasks": len(self.tasks)}
        tensors = self.tensors()
        for name, (dims, dtype) in self.specs().items():
            tensor = tensors[name]
            if tensor.dtype != dtype:
                raise TaskVectorError(f"{self.where}: '{name}' has dtype {tensor.dtype}, expected {dtype}")
            shape = tuple(tensor.shape)
            expected = tuple(sizes.get(dim, dim) if isinstance(dim, str) else dim for dim in dims)
            if len(shape) != len(dims) or any(
                isinstance(want, int) and size != want for size, want in zip(shape, expected, strict=True)
            ):
                wanted = tuple(
                    "any"
                    if dim is None
                    else f"{dim}={sizes[dim]}"
                    if isinstance(dim, str) and dim in sizes
                    else str(dim)
                    for dim in dims
                )
                raise TaskVectorError(f"{self.where}: '{name}' has shape {shape}, expected {wanted}")
        for name, tensor in tensors.items():
            require_finite(tensor, name, self.where)

    def check(
        self,
        layout: dict[str, int],
        model: nn.Module | None = None,
        *,
        method: str | None = None,
        allow_other_model: bool = False,
    ) -> None:
        """Refuse a vector of another method (when `method` is given), layout or model (when given: weights
        fingerprint and the scale of the values), naming the file and the field."""
        if method is not None and self.method != method:
            raise TaskVectorError(
                f"{self.where} was exported by method {self.method!r}; this run's method reads "
                f"{method!r} vectors (field 'method')"
            )
        if self.layout != layout:
            raise TaskVectorMismatchError(
                f"{self.where} was made for {self.model or 'another model'} with layout "
                f"{self.layout}; this model's layout is {layout} (field 'layout')"
            )
        self._check_tensors(layout)
        self._check_ranges(layout)
        if model is not None:
            self.check_model(model, allow_other_model)

    def _check_ranges(self, layout: dict[str, int]) -> None:
        """Indices in the vector that must fall inside the model (heads, layer)."""

    def check_model(self, model: nn.Module, allow_other_model: bool = False) -> None:
        """The model's weights fingerprint, and the values' scale against the model's own."""
        difference = fingerprint_difference(self.fingerprint, model) if self.fingerprint else "no fingerprint saved"
        if difference is not None:
            message = (
                f"{self.where} was made with model {self.model or '?'} and does not match this model's "
                f"weights (field 'fingerprint': {difference})"
            )
            if not allow_other_model:
                raise TaskVectorMismatchError(
                    f"{message}; to transfer it on purpose, allow_other_model=True "
                    "(model.init_args.allow_other_model=true)"
                )
            warnings.warn(f"{message}; applied anyway (allow_other_model)", stacklevel=2)
        scale = model_scale(model)
        for name, vectors in self.scaled_vectors().items():
            require_plausible_scale(vectors, name, self.where, scale)

    def scaled_vectors(self) -> dict[str, torch.Tensor]:
        """The vectors patched into the model, by tensor name, for the scale check."""
        return {}

    def check_tasks(self, tasks: Sequence[str], benchmark: str | None = None, allow_other_task: bool = False) -> None:
        """Refuse a run on tasks (or a benchmark) the vector was not made for, unless allowed (then warn)."""
        saved_benchmark = self.extra.get("benchmark")
        missing = [task for task in tasks if self.tasks and task not in self.tasks]
        other_benchmark = benchmark is not None and saved_benchmark not in (None, benchmark)
        if not missing and not other_benchmark:
            return
        made = f"tasks {self.tasks} of {saved_benchmark}"
        message = f"{self.where} was made for {made}; this run's tasks are {list(tasks)} of {benchmark} (field 'tasks')"
        if not allow_other_task:
            raise TaskVectorMismatchError(
                f"{message}; to use it there on purpose, allow_other_task=True (model.init_args.allow_other_task=true)"
            )
        warnings.warn(f"{message}; used anyway (allow_other_task)", stacklevel=2)

    def task_index(self, task: str | None, allow_other_task: bool = False) -> int:
        """Which of the file's per-task vectors serves `task` (one task only: it serves any task if allowed)."""
        if task is None or not self.tasks:
            if len(self.tasks) > 1:
                raise ValueError(f"{self.where} holds one vector per task {self.tasks}: pass task=<one of them>")
            return 0
        if task in self.tasks:
            return self.tasks.index(task)
        if len(self.tasks) == 1 and allow_other_task:
            return 0
        hint = "; pass allow_other_task=True to use it anyway" if len(self.tasks) == 1 else ""
        raise TaskVectorMismatchError(
            f"{self.where} has no vector for task {task!r} (it has {self.tasks}; field 'tasks'){hint}"
        )

    # ---- use -----------------------------------------------------------------------------------

    def patching(
        self, target: HookedModel, index: int, policy: PatchPolicy, layer: int | None
    ) -> AbstractContextManager:
        """The intervention of task `index`'s vector (`layer`: another layer than the saved one)."""
        raise NotImplementedError

    @contextmanager
    def apply(
        self,
        model: nn.Module,
        task: str | None = None,
        *,
        policy: PatchPolicy = "prompt",
        layer: int | None = None,
        allow_other_task: bool = False,
        allow_other_model: bool = False,
    ) -> Iterator[None]:
        """Patch a plain `transformers` model while the block runs (checked first); the hooks go on exit."""
        layout = discover_layout(model)
        self.check(layout.signature(), model, allow_other_model=allow_other_model)
        index = self.task_index(task, allow_other_task)
        if task is not None and self.tasks and self.tasks[index] != task:
            warnings.warn(
                f"{self.where} was made for task {self.tasks[index]!r}; applied to task {task!r} (allow_other_task)",
                stacklevel=3,
            )
        with ExitStack() as stack:
            stack.callback(model.register_forward_pre_hook(_refuse_right_padding, with_kwargs=True).remove)
            stack.enter_context(self.patching(HookedModel(model, layout), index, policy, layer))
            yield


@dataclass(kw_only=True)
class HeadVector(TaskVector):
    """MTV: per-head means `[layers, heads, head_dim]`, the replaced heads as (layer, head) index pairs
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

    def _check_ranges(self, layout: dict[str, int]) -> None:
        for column, dim in enumerate(("num_layers", "num_heads")):
            values = self.heads[:, column]
            if len(values) and (int(values.min()) < 0 or int(values.max()) >= layout[dim]):
                raise TaskVectorError(
                    f"{self.where}: 'heads' holds {dim[4:-1]} indices {sorted(set(values.tolist()))}"
                    f", out of range 0..{layout[dim] - 1}"
                )

    def scaled_vectors(self) -> dict[str, torch.Tensor]:
        return {"mean_activations": self.means[self.heads[:, 0], self.heads[:, 1]]}

    def patching(
        self, target: HookedModel, index: int, policy: PatchPolicy, layer: int | None
    ) -> AbstractContextManager:
        if layer is not None:
            raise ValueError(f"{self.where} replaces heads: layer= applies to residual vectors only")
        return replace_heads(target, self.means, self.mask(), policy=policy)


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

    def specs(self) -> dict[str, tuple[Dims, torch.dtype]]:
        if self.vectors.dim() == 2:  # one layer's vectors
            return {"vectors": (("tasks", "hidden_size"), torch.float32)}
        return self.tensor_specs

    def _check_tensors(self, layout: dict[str, int] | None = None) -> None:
        super()._check_tensors(layout)
        if self.mode not in ("replace", "add"):
            raise TaskVectorError(f"{self.where}: field 'mode' is {self.mode!r}, expected 'replace' or 'add'")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"vectors": self.vectors, **self.provenance}

    def kind_metadata(self) -> dict[str, object]:
        return {"layer": self.layer, "mode": self.mode, "scale": self.scale}

    def _check_ranges(self, layout: dict[str, int]) -> None:
        if self.layer is None:
            return
        layers = layout["num_layers"] if self.vectors.dim() == 2 else min(layout["num_layers"], self.vectors.shape[1])
        if not 0 <= self.layer < layers:
            raise TaskVectorError(f"{self.where}: field 'layer' is {self.layer}, out of range 0..{layers - 1}")

    def at_layer(self, index: int, layer: int | None = None) -> tuple[torch.Tensor, int]:
        """Task `index`'s vector at `layer` (default: the saved one), and that layer."""
        chosen = self.layer if layer is None else layer
        if chosen is None:
            raise ValueError(f"{self.where} stores no layer: pass layer=<a layer index>")
        vector = self.vectors[index]
        return (vector[chosen] if vector.dim() == 2 else vector), chosen

    def for_task(self, task: str, allow_other_task: bool = False) -> torch.Tensor:
        """The row serving `task` (a one-task file serves any task when allowed)."""
        return self.vectors[self.task_index(task, allow_other_task)]

    def scaled_vectors(self) -> dict[str, torch.Tensor]:
        if self.vectors.dim() == 2 or self.layer is None:
            return {"vectors": self.vectors}
        return {"vectors": self.vectors[:, self.layer]}

    def patching(
        self, target: HookedModel, index: int, policy: PatchPolicy, layer: int | None
    ) -> AbstractContextManager:
        vector, chosen = self.at_layer(index, layer)
        return patch_residual(target, chosen, vector, mode=self.mode, scale=self.scale)


KINDS: dict[str, type[TaskVector]] = {kind.kind: kind for kind in (HeadVector, ResidualVector)}
_COMMON = ("kind", "method", "model", "layout", "fingerprint", "tasks", "checksums", "lit_tv_version")


def load(path: str | Path, kind: type[TaskVector] | None = None) -> TaskVector:
    """Read a task-vector file (checksums verified), as its kind's object; `kind`: the one expected."""
    path = Path(path)
    tensors, raw = load_task_vector(path)
    metadata = {key: _decode(value) for key, value in raw.items()}
    found = KINDS.get(str(metadata.get("kind")))
    if found is None:
        raise TaskVectorError(f"{path}: field 'kind' is {metadata.get('kind')!r}, expected one of {sorted(KINDS)}")
    if kind is not None and found is not kind:
        raise TaskVectorError(
            f"task vector {path} was exported by method {metadata.get('method')!r} (a "
            f"{found.kind} vector); this run reads {kind.kind} vectors (field 'kind')"
        )
    missing = sorted(set(found.tensor_specs) - set(tensors))
    if missing:
        raise TaskVectorError(f"task vector {path} has no tensor '{missing[0]}' (it has {sorted(tensors)})")
    common = {
        "tasks": list(metadata.get("tasks") or []),
        "method": str(metadata.get("method", "")),
        "model": str(metadata.get("model", "")),
        "layout": metadata.get("layout") or {},
        "fingerprint": metadata.get("fingerprint") or {},
        "path": path,
    }
    if found is HeadVector:
        vector: TaskVector = HeadVector(
            means=tensors.pop("mean_activations"), theta=tensors.pop("theta"), heads=tensors.pop("heads"), **common
        )
        kind_keys: tuple[str, ...] = ()
    else:
        vector = ResidualVector(
            vectors=tensors.pop("vectors"),
            layer=metadata.get("layer"),
            mode=metadata.get("mode", "replace"),
            scale=float(metadata.get("scale", 1.0)),
            provenance=tensors,
            **common,
        )
        kind_keys = ("layer", "mode", "scale")
    vector.extra = {key: value for key, value in metadata.items() if key not in (*_COMMON, *kind_keys)}
    vector._check_tensors()
    return vector


def _decode(value: str) -> object:
    try:
        return json.loads(value)
    except ValueError:
        return value  # strings are stored as they are
