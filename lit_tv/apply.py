"""Apply a saved task vector to a plain Hugging Face model, in the user's own loop or eval harness.

    import lit_tv
    with lit_tv.apply_task_vector(model, "task_vector.safetensors", task="colour"):
        output = model.generate(**processor(text=prompts, images=images, padding=True, return_tensors="pt"))

Works for the three kinds of file lit_tv exports: MTV (head means + selected heads), cross-modal
residual vectors (one per task, at the saved layer) and Function Vectors (one per task, added at the
saved layer). The patched position is the **last prompt token**, which is position -1 of every row only
when the batch is left-padded (``tokenizer.padding_side = "left"``): a right-padded batch is refused
instead of silently patching a pad token. The vector is written during the prompt's forward (prefill)
only, as `lit-tv test` does by default; MTV's ``policy="every_token"`` also writes it at every generated
token. No Lightning, no `FrozenVLM`: the model object is used as it is (not moved, cast or frozen).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lit_tv.interventions import PatchPolicy, patch_residual, replace_heads
from lit_tv.layout import Layout, discover_layout
from lit_tv.task_vectors import check_layout, load_task_vector

# file kind (its 'method' metadata) -> (tensor of the per-task vectors, how they are written unless saved)
RESIDUAL_KINDS = {"residual": ("vectors", "replace"), "function_vectors": ("function_vectors", "add")}


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
        raise ValueError("apply_task_vector patches position -1, the last prompt token only in a left-padded batch, "
                         "but this batch is right-padded: set tokenizer.padding_side = 'left' "
                         "(processor.tokenizer.padding_side for a VLM) before building the inputs")


def _pick_task(path: Path, tasks: list[str], task: str | None) -> int:
    if task is None:
        if len(tasks) != 1:
            raise ValueError(f"task vector {path} holds one vector per task {tasks}: pass task=<one of them>")
        return 0
    if task not in tasks:
        raise ValueError(f"task vector {path} has no vector for task {task!r} (it has {tasks})")
    return tasks.index(task)


@contextmanager
def apply_task_vector(model: nn.Module, path: str | Path, task: str | None = None,
                      policy: PatchPolicy = "prompt", layer: int | None = None) -> Iterator[None]:
    """Patch `model` with the task vector in `path` while the block runs; the hooks go on exit.

    model: a plain `transformers` model (VLM or causal LM); its layout must match the file's
        (checked first, naming both). task: which of the file's per-task vectors (needed when it has
        several; an MTV file holds one task). policy: MTV's ``prompt`` (default) or ``every_token``.
        layer: another layer than the one saved with a residual or FV file. A residual vector is
        written as its run did (metadata 'mode' and 'scale': replace, or add x scale); an FV is added.
    """
    path = Path(path)
    layout = discover_layout(model)
    check_layout(path, layout.signature())
    tensors, metadata = load_task_vector(path)
    method = metadata.get("method", "")
    target = HookedModel(model, layout)
    with ExitStack() as stack:
        stack.callback(model.register_forward_pre_hook(_refuse_right_padding, with_kwargs=True).remove)
        if method == "mtv":
            _pick_task(path, json.loads(metadata.get("tasks", "[]")) or [task], task)
            stack.enter_context(replace_heads(target, tensors["mean_activations"], tensors["selected_heads"].bool(),
                                              policy=policy))
        elif method in RESIDUAL_KINDS:
            key, mode = RESIDUAL_KINDS[method]
            vector = tensors[key][_pick_task(path, json.loads(metadata["tasks"]), task)]
            chosen = json.loads(metadata.get("layer", "null")) if layer is None else layer
            if chosen is None:
                raise ValueError(f"task vector {path} stores no layer: pass layer=<0..{layout.num_layers - 1}>")
            if vector.dim() == 2:  # residual files hold every layer's vector: [layers, hidden]
                vector = vector[chosen]
            stack.enter_context(patch_residual(target, chosen, vector, mode=metadata.get("mode", mode),
                                               scale=float(metadata.get("scale", "1.0"))))
        else:
            raise ValueError(f"task vector {path}: unknown method {method!r} in its metadata "
                             f"(expected 'mtv' or one of {sorted(RESIDUAL_KINDS)})")
        yield
