"""Model identity: a *fingerprint* of a loaded model's weights, saved in every task vector and checkpoint, and
where a model differs from a saved one.

It holds the text config's ``model_type`` and ``vocab_size``, the Frobenius norms of the input and output
embeddings (found through the model's own accessors), and ``weight_samples``: for every floating-point parameter
(each decoder layer's, the embeddings', the vision tower's and projector's: every weight a vector's effect goes
through) its values at ``SAMPLES_PER_TENSOR`` positions fixed by the SHA-256 of the parameter's name. A fine-tune
that changes a tensor throughout (frozen embeddings or not) moves its samples; a model moved to another folder
matches (no path is in it). It is taken once per load: cached per model until a parameter or its storage is
replaced, or changed in place (torch counts in-place changes).

Sampled values are compared within a tolerance, not hashed: a bf16 or fp16 load of the same fp32 weights holds
each value rounded (at most 2^-8 relative in bf16; fp16 also flushes values below 3e-8), and no common rounding
makes both sides' bytes equal (a value beside a rounding boundary rounds apart; fp32 -> fp16 -> bf16 rounds twice),
so a hash would refuse some loads of the very same weights. Two values agree within ``SAMPLE_TOLERANCE`` (2^-7
relative, twice bf16's rounding) plus ``SAMPLE_FLOOR``; norms within ``NORM_TOLERANCE`` (1%).

Not covered: weights an nf4 load quantizes (compared where both sides hold floats: embeddings, norms, biases),
buffers, and a change confined to values no sample lands on (a few rows of a matrix). A fingerprint of lit_tv's
first form (no ``weight_samples``: config and embedding norms only) still loads: it is compared as far as it
goes, and `is_partial` tells the caller to warn that the layer weights went unchecked.
"""

from __future__ import annotations

import copy
import hashlib
import weakref
from typing import cast

import torch
from torch import nn
from transformers import PreTrainedModel

NORM_TOLERANCE = 0.01
SAMPLE_TOLERANCE = 2**-7
SAMPLE_FLOOR = 1e-7
SAMPLES_PER_TENSOR = 4  # one SHA-256 digest: four 8-byte positions
SAMPLES = "weight_samples"

# model -> (its parameters' identities, storages and in-place versions when taken, its fingerprint)
_TAKEN: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[tuple[int, int, int | None], ...], dict[str, object]]] = (
    weakref.WeakKeyDictionary()
)


def embedding_row_norms(module: nn.Module | None) -> torch.Tensor | None:
    """The L2 norm of each row of an embedding matrix (None: no plain, loaded matrix, e.g. an offloaded one)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.is_meta:
        return None
    return torch.linalg.vector_norm(weight.detach(), dim=1, dtype=torch.float32)


def sample_positions(name: str, numel: int) -> list[int]:
    """Where a parameter is sampled: fixed by its name alone, so every load of the model samples the same values."""
    digest = hashlib.sha256(name.encode()).digest()
    starts = range(0, 8 * SAMPLES_PER_TENSOR, 8)
    return [int.from_bytes(digest[start : start + 8], "little") % numel for start in starts]


def weight_samples(model: nn.Module) -> dict[str, list[float]]:
    """Each floating-point parameter's values at its `sample_positions` (quantized and offloaded ones left out)."""
    samples = {}
    for name, parameter in model.named_parameters():
        if not parameter.is_floating_point() or parameter.is_meta or not parameter.numel():
            continue
        flat = parameter.detach().reshape(-1)
        values = flat[torch.tensor(sample_positions(name, flat.numel()), device=flat.device)].float().cpu()
        samples[name] = [float(f"{value:.7g}") for value in values.tolist()]
    return samples


def _version(parameter: torch.Tensor) -> int | None:
    """How often the tensor was changed in place; inference tensors (weights an offloading load creates under
    inference mode) keep no count, and cannot be changed outside it."""
    return None if parameter.is_inference() else parameter._version


def model_fingerprint(model: PreTrainedModel) -> dict[str, object]:
    """What identifies a model's weights (see the module doc); taken once per load of the weights."""
    state = tuple((id(parameter), parameter.data_ptr(), _version(parameter)) for parameter in model.parameters())
    taken = _TAKEN.get(model)
    if taken is None or taken[0] != state:
        text = model.config.get_text_config()
        norms = {}
        for name, module in (
            ("input_embedding_norm", model.get_input_embeddings()),
            ("output_embedding_norm", model.get_output_embeddings()),
        ):
            rows = embedding_row_norms(module)
            norms[name] = None if rows is None else float(rows.square().sum().sqrt())
        fingerprint = {
            "model_type": getattr(text, "model_type", ""),
            "vocab_size": getattr(text, "vocab_size", None),
            **norms,
            SAMPLES: weight_samples(model),
        }
        taken = _TAKEN[model] = (state, fingerprint)
    return copy.deepcopy(taken[1])


def is_partial(saved: dict[str, object]) -> bool:
    """A fingerprint of the first form: config and embedding norms, no weight samples."""
    return SAMPLES not in saved


def _samples_difference(saved: dict[str, list[float]], model: PreTrainedModel, own: dict[str, list[float]]) -> str:
    """The first sampled weight that differs ("" when none does); names the model has but cannot sample (quantized
    or offloaded here) are skipped."""
    names = {name for name, _ in model.named_parameters()}
    for name, values in saved.items():
        if name not in names:
            return f"weight {name!r} in the file, no weight of that name in this model (another model class?)"
        for position, (value, mine) in enumerate(zip(values, own.get(name, values), strict=True)):
            if abs(value - mine) > SAMPLE_TOLERANCE * max(abs(value), abs(mine)) + SAMPLE_FLOOR:
                return f"weight {name!r}, sample {position}: {value:.6g} in the file, {mine:.6g} in this model"
    return ""


def fingerprint_difference(saved: dict[str, object], model: PreTrainedModel) -> str | None:
    """Where `model` differs from a saved fingerprint (None when it matches as far as the fingerprint goes)."""
    own = model_fingerprint(model)
    for key, value in saved.items():
        mine = own.get(key)
        if key == SAMPLES:
            if difference := _samples_difference(cast(dict, value), model, cast(dict, mine)):
                return difference
        elif isinstance(value, float) and isinstance(mine, float):
            if abs(value - mine) > NORM_TOLERANCE * max(abs(value), abs(mine)):
                return f"{key} {value:.6g} in the file, {mine:.6g} in this model"
        elif value != mine:
            return f"{key} {value!r} in the file, {mine!r} in this model"
    return None
