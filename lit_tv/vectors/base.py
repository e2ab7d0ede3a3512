"""What every kind of task vector shares: its file's metadata, the checks against a layout and a model,
and applying it to a plain transformers model as a context manager. The kinds are in lit_tv/vectors/kinds.py."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

import torch
from torch import nn

from lit_tv.episodes import Episode, Example
from lit_tv.interventions.hooks import PATCH_POLICIES, Hookable, PatchPolicy, removed_on_exit
from lit_tv.model.layout import Layout, Signature, discover_layout
from lit_tv.prompts import PromptTemplate
from lit_tv.vectors.file import (
    TaskVectorError,
    TaskVectorMismatchError,
    model_scale,
    require_finite,
    require_plausible_scale,
    write_vector_file,
)
from lit_tv.vectors.fingerprint import fingerprint_difference, is_partial, model_fingerprint
from lit_tv.vectors.fitted_on import FittedOn

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# a tensor's dims by layout field ("tasks": one per task; "heads": one per selected head; None: any size)
Dims = tuple[str | int | None, ...]


def config_block(hparams: Mapping[str, object]) -> dict[str, object]:
    """Saved hyper-parameters as a config block (``class_path``, ``init_args``), JSON-safe: what a vector file
    records of the run that made it (a value JSON cannot hold is written as its text)."""
    init_args = {key: value for key, value in hparams.items() if not key.startswith("_")}
    return json.loads(json.dumps({"class_path": hparams.get("_class_path"), "init_args": init_args}, default=str))


@dataclass(frozen=True)
class HookedModel:
    """What the intervention hooks need from a model: the model and its layout (see `lit_tv.interventions.hooks`)."""

    model: PreTrainedModel
    layout: Layout

    @property
    def device(self) -> torch.device:
        return cast(torch.Tensor, self.layout.lm_head.weight).device


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
    revision: str | None = None  # the hub revision the model was pinned to (None: whatever the name resolved to)
    layout: Signature = field(default_factory=dict)
    fingerprint: dict[str, object] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)  # provenance (benchmark, shots, seed, ...)
    policy: PatchPolicy = "prompt"  # the patch policy its run scored it with, which `apply` repeats by default
    path: Path | None = None
    hub: str | None = None  # ``user/name@revision`` when the file was downloaded from the Hub (`path`: its cached copy)

    kind: ClassVar[str]
    tensor_specs: ClassVar[dict[str, tuple[Dims, torch.dtype]]]
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"policy": PATCH_POLICIES}  # metadata fields of a few values

    USAGE: ClassVar[tuple[str, ...]] = (
        "prompt",
        "prompt_wrap",
        "image_placeholder",
        "max_new_tokens",
        "patch_position",
        "benchmark",
        "config",
        "lit_tv_version",
    )

    @property
    def usage(self) -> dict[str, object]:
        """How the vector was made and scored, as the file records it: the prompt template's fields, the chat
        wrap, the image placeholder, the new tokens, the patched position, the benchmark (besides `policy`), the
        run's model and data config blocks and the lit_tv version; a field the file lacks (exported before lit_tv
        recorded it) is missing here."""
        return {name: self.extra[name] for name in self.USAGE if name in self.extra}

    def prompt_template(self) -> PromptTemplate | None:
        """The prompt format the vector was made and scored with, to build prompts from (None: the file is older
        than the field); a recorded template that does not parse is refused, naming the field."""
        recorded = self.extra.get("prompt")
        if recorded is None:
            return None
        try:
            return PromptTemplate(**cast(dict, recorded))
        except TypeError as error:
            raise TaskVectorError(f"{self.where}: field 'prompt' is not a prompt template ({error})") from error

    def render_prompt(self, text: str = "", images: int = 0) -> str:
        """A zero-shot query's prompt as the vector was made and scored with it (the recorded template, chat wrap and
        image placeholder): the text to build a model's inputs from when applying it outside lit_tv."""
        template = self.prompt_template()
        if template is None:
            raise TaskVectorError(
                f"{self.where} does not record its prompt (exported by an earlier lit_tv): build the prompt as its run "
                "did"
            )
        if template.chat:
            raise TaskVectorError(
                f"{self.where} was made in the model's chat template: render the query with the processor's "
                "apply_chat_template (lit_tv.FrozenVLM.render does)"
            )
        placeholder, wrap = self.extra.get("image_placeholder"), self.extra.get("prompt_wrap")
        prompt = template.render(Episode(Example(text, ("",) * images)), str(placeholder or ""))
        return prompt if not isinstance(wrap, str) else wrap.format(prompt=prompt)

    def differences(self, run: dict[str, object]) -> list[str]:
        """Where a run's usage (fields as in `usage`) differs from the file's, as ``field: file's -> run's``;
        fields the file does not record are not compared."""
        recorded = self.usage
        return [
            f"{key}: {recorded[key]!r} -> {value!r}" for key, value in run.items() if recorded.get(key, value) != value
        ]

    @property
    def where(self) -> str:
        return f"task vector {self.hub or self.path}" if self.hub or self.path else "task vector"

    def tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def specs(self) -> dict[str, tuple[Dims, torch.dtype]]:
        """The kind's tensors: name -> (dims, dtype)."""
        return self.tensor_specs

    def with_model(self, model: PreTrainedModel, name: str, revision: str | None = None) -> TaskVector:
        """Stamp the model it was made with (name, pinned revision, layout, fingerprint), as an export does."""
        self.model, self.revision = name, revision
        self.layout, self.fingerprint = discover_layout(model).signature(), model_fingerprint(model)
        return self

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the vector with its metadata and checksums, after the checks that need no model; an existing
        file is replaced only with ``overwrite``."""
        self.path = Path(path)
        self._check_tensors(self.layout)
        return write_vector_file(path, self.tensors(), self.metadata(), overwrite=overwrite)

    def metadata(self) -> dict[str, object]:
        """What the file's metadata holds besides the checksums."""
        return {
            **self.extra,
            "kind": self.kind,
            "method": self.method,
            "model": self.model,
            "revision": self.revision,
            "layout": self.layout,
            "fingerprint": self.fingerprint,
            "tasks": self.tasks,
            "policy": self.policy,
        }

    # ---- checks --------------------------------------------------------------------------------

    def _check_tensors(self, layout: Signature | None = None) -> None:
        """Every tensor of the kind of its dtype and shape (sizes of `layout` when given, else only their number
        of dims and tasks), all finite; `choices` fields one of their values."""
        for name, allowed in self.choices.items():
            if (value := getattr(self, name)) not in allowed:
                raise TaskVectorError(f"{self.where}: field {name!r} is {value!r}, expected one of {allowed}")
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
        layout: Signature,
        model: PreTrainedModel | None = None,
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

    def _check_ranges(self, layout: Signature) -> None:
        """Indices in the vector that must fall inside the model (heads, layer)."""

    def check_model(self, model: PreTrainedModel, allow_other_model: bool = False) -> None:
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
        elif is_partial(self.fingerprint):
            warnings.warn(
                f"{self.where} records the first form of model fingerprint (exported by an earlier lit_tv): it matches "
                "this model's config and embeddings, but the layer weights are not checked; export it again to check "
                "them",
                stacklevel=2,
            )
        scale = model_scale(model)
        for name, vectors in self.scaled_vectors().items():
            require_plausible_scale(vectors, name, self.where, scale)

    def scaled_vectors(self) -> dict[str, torch.Tensor]:
        """The vectors patched into the model, by tensor name, for the scale check."""
        return {}

    @property
    def fitted_on(self) -> FittedOn:
        """Its tasks, and the benchmark (DataModule class) it was made on where the export recorded it."""
        return FittedOn(tuple(self.tasks), cast(str | None, self.extra.get("benchmark")))

    def check_tasks(self, run: FittedOn, allow_other_task: bool = False) -> None:
        """Refuse a run on tasks (or a benchmark) the vector was not made for, unless allowed (then warn)."""
        self.fitted_on.check(
            run, f"{self.where} was made for", allow_other_task, TaskVectorMismatchError, " (field 'tasks')"
        )

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
        self, target: Hookable, index: int | list[int] = 0, policy: PatchPolicy | None = None, layer: int | None = None
    ) -> AbstractContextManager:
        """Task `index`'s vector patched in (a list: one task per batch row), as its run did unless `policy` /
        `layer` say otherwise; methods patch through this too, so a file applies the intervention it was scored with."""
        raise NotImplementedError

    @contextmanager
    def apply(
        self,
        model: PreTrainedModel,
        task: str | None = None,
        *,
        policy: PatchPolicy | None = None,
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
        padding = model.register_forward_pre_hook(_refuse_right_padding, with_kwargs=True)
        with removed_on_exit([padding]), self.patching(HookedModel(model, layout), index, policy, layer):
            yield
