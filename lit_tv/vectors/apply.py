"""Apply a saved task vector to a plain Hugging Face model, in the user's own loop or eval harness.

    import lit_tv
    with lit_tv.apply_task_vector(model, "task_vector.safetensors", task="colour"):
        output = model.generate(**processor(text=prompts, images=images, padding=True, return_tensors="pt"))

Works for the three kinds of file lit_tv exports: MTV (head means + selected heads), cross-modal
residual vectors (one per task, at the saved layer) and Function Vectors (one per task, added at the
saved layer). The patched position is the **last prompt token**, which is position -1 of every row only
when the batch is left-padded (``tokenizer.padding_side = "left"``): a right-padded batch is refused
instead of silently patching a pad token. The vector is written as its run scored it, with the policy the file
records (``prompt``: the prompt's forward only; ``every_token``: every generated token too) unless ``policy=``
says otherwise. No Lightning, no `FrozenVLM`: the model object is used as it is (not moved, cast or frozen).

This is ``lit_tv.vectors.kinds.load(path).apply(model, ...)``: the file is checked first (checksums, layout,
the model's weights fingerprint, the values' scale) and a mismatch is refused naming the field, unless
``allow_other_task`` / ``allow_other_model`` says it is meant (then a one-line warning).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from lit_tv.interventions.hooks import PatchPolicy
from lit_tv.vectors.kinds import load

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def apply_task_vector(
    model: PreTrainedModel,
    path: str | Path,
    task: str | None = None,
    policy: PatchPolicy | None = None,
    layer: int | None = None,
    *,
    revision: str | None = None,
    allow_other_task: bool = False,
    allow_other_model: bool = False,
) -> AbstractContextManager[None]:
    """Patch `model` with the task vector in `path` while the block runs; the hooks go on exit.

    path: the file, a folder holding task_vector.safetensors (`lit_tv.vectors.sharing.save_pretrained`'s), or a
        hub id ``user/name`` (downloaded at `revision`: a branch, tag or commit; None: main).

    model: a plain `transformers` model (VLM or causal LM); its layout and weights must match the file's
        (checked first, naming both). task: which of the file's per-task vectors (needed when it has
        several; an MTV file holds one task). policy: ``prompt`` or ``every_token``; None (default): the
        policy the file records, the one its run was scored with (files from before the field: ``prompt``).
        layer: another layer than the one saved with a residual or FV file. A residual vector is
        written as its run did (its 'mode' and 'scale': replace, or add x scale); an FV is added.
        allow_other_task / allow_other_model: use a one-task vector for another task, or a vector made
        with other weights of the same layout (a transfer), with a warning.
    """
    return load(path, revision=revision, option="path").apply(
        model, task, policy=policy, layer=layer, allow_other_task=allow_other_task, allow_other_model=allow_other_model
    )
