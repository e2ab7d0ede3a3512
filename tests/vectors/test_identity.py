"""A vector file's identity: the model fingerprint covers the layer weights (a bf16 / fp16 load and a moved folder
still match), and every metadata field is covered by a checksum (a hand edit is refused, naming the field)."""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForImageTextToText

from lit_tv.model.layout import discover_layout
from lit_tv.model.loading import BUILTIN_MODELS
from lit_tv.vectors.file import METADATA_CHECKSUMS, TaskVectorError, TaskVectorMismatchError, load_task_vector
from lit_tv.vectors.fingerprint import SAMPLES, fingerprint_difference, model_fingerprint
from lit_tv.vectors.kinds import HeadVector, ResidualVector, load

TOY = BUILTIN_MODELS["lit_tv/shapes-toy"]
TUNED = "model.language_model.layers.2.mlp.down_proj.weight"  # a weight the fine-tune below changes


@pytest.fixture(scope="module")
def toy():
    return AutoModelForImageTextToText.from_pretrained(TOY)


def residual_vector(model) -> ResidualVector:
    """A residual vector with every kind of field a hand edit could change (layer, mode, scale besides the common)."""
    layout = discover_layout(model).signature()
    return ResidualVector(
        vectors=torch.randn(2, layout["num_layers"], layout["hidden_size"], generator=torch.Generator().manual_seed(0)),
        layer=1,
        mode="add",
        scale=2.0,
        tasks=["colour", "shape"],
        method="residual",
        extra={"benchmark": "ShapesDataModule", "prompt": {"query": "{text} ="}},
    ).with_model(model, "lit_tv/shapes-toy", "main")


def head_vector(model) -> HeadVector:
    layout = discover_layout(model).signature()
    shape = (layout["num_layers"], layout["num_heads"])
    return HeadVector(
        means=torch.randn(*shape, layout["head_dim"], generator=torch.Generator().manual_seed(0)),
        theta=torch.zeros(shape),
        heads=torch.tensor([[0, 1], [2, 3]]),
        tasks=["colour"],
        method="mtv",
    ).with_model(model, "lit_tv/shapes-toy")


def checked_quietly(path: Path, model) -> None:
    """The file loads and passes every check against `model` without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(path).check(discover_layout(model).signature(), model)


def test_a_fine_tune_with_frozen_embeddings_is_refused_naming_the_weight(toy, tmp_path):
    tuned = copy.deepcopy(toy)
    weights = dict(tuned.named_parameters())
    with torch.no_grad():
        weights[TUNED].add_(torch.randn(weights[TUNED].shape, generator=torch.Generator().manual_seed(1)) * 0.02)
    saved = model_fingerprint(toy)
    # what the fingerprint covered before: config and embedding norms, the same in both models
    assert fingerprint_difference({key: value for key, value in saved.items() if key != SAMPLES}, tuned) is None
    path = head_vector(toy).save(tmp_path / "vector.safetensors")
    with pytest.raises(TaskVectorMismatchError, match=rf"vector.safetensors .*'fingerprint': weight '{TUNED}'"):
        load(path).check(discover_layout(tuned).signature(), tuned)
    checked_quietly(path, toy)


def test_a_weight_changed_in_place_after_a_check_is_seen(toy):
    """The fingerprint is taken once per load, but a change to the loaded weights is not hidden by that."""
    tuned = copy.deepcopy(toy)
    before = model_fingerprint(tuned)
    with torch.no_grad():
        dict(tuned.named_parameters())[TUNED].mul_(1.5)
    assert fingerprint_difference(before, tuned) is not None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_load_of_the_same_weights_matches(toy, tmp_path, dtype):
    path = head_vector(toy).save(tmp_path / "vector.safetensors")
    checked_quietly(path, AutoModelForImageTextToText.from_pretrained(TOY, dtype=dtype))


def test_a_model_moved_to_another_folder_matches(toy, tmp_path):
    toy.save_pretrained(tmp_path / "first")
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "first")
    vector = head_vector(model).with_model(model, str(tmp_path / "first"))
    path = vector.save(tmp_path / "vector.safetensors")
    shutil.move(tmp_path / "first", tmp_path / "moved")
    checked_quietly(path, AutoModelForImageTextToText.from_pretrained(tmp_path / "moved"))


def test_a_fingerprint_of_the_first_form_loads_with_a_warning(toy, tmp_path):
    vector = head_vector(toy)
    vector.fingerprint = {key: value for key, value in vector.fingerprint.items() if key != SAMPLES}
    path = vector.save(tmp_path / "old.safetensors")
    with pytest.warns(UserWarning, match=r"old.safetensors records the first form .* layer weights are not checked"):
        load(path).check(discover_layout(toy).signature(), toy)


def _hand_edited(path: Path, field: str, value: str | None) -> Path:
    """The file with one metadata field set to `value` (None: removed), everything else as exported."""
    tensors, metadata = load_task_vector(path)
    if value is None:
        del metadata[field]
    else:
        metadata[field] = value
    save_file(tensors, str(path), metadata=metadata)
    return path


# (metadata field, a hand-edited value): each changes what the vector is or how it applies
EDITS = [
    ("tasks", json.dumps(["shape", "colour"])),
    ("model", "other/model"),
    ("revision", json.dumps("v2")),
    ("layout", json.dumps({"num_layers": 4, "num_heads": 8, "head_dim": 16, "hidden_size": 128, "extra": 1})),
    ("method", "function_vectors"),
    ("kind", "heads"),
    ("policy", "every_token"),
    ("layer", "2"),
    ("mode", "replace"),
    ("scale", "3.0"),
    ("benchmark", "OtherDataModule"),
    ("prompt", json.dumps({"query": "{text} ?"})),
]


@pytest.mark.parametrize(("field", "value"), EDITS, ids=[edit[0] for edit in EDITS])
def test_a_hand_edited_field_is_refused_naming_it(toy, tmp_path, field, value):
    path = _hand_edited(residual_vector(toy).save(tmp_path / "edited.safetensors"), field, value)
    with pytest.raises(TaskVectorError, match=rf"edited.safetensors: field '{field}' was edited after export"):
        load(path)


def test_a_hand_edited_fingerprint_is_refused_naming_it(toy, tmp_path):
    path = residual_vector(toy).save(tmp_path / "edited.safetensors")
    fingerprint = json.loads(load_task_vector(path)[1]["fingerprint"])
    _hand_edited(path, "fingerprint", json.dumps({**fingerprint, "input_embedding_norm": 1.0}))
    with pytest.raises(TaskVectorError, match=r"edited.safetensors: field 'fingerprint' was edited after export"):
        load(path)


@pytest.mark.parametrize(("field", "value", "change"), [("scale", None, "removed"), ("note", "x", "added")])
def test_a_field_removed_or_added_by_hand_is_refused(toy, tmp_path, field, value, change):
    path = _hand_edited(residual_vector(toy).save(tmp_path / "edited.safetensors"), field, value)
    with pytest.raises(TaskVectorError, match=rf"field '{field}' was {change} after export"):
        load(path)


def test_a_file_without_metadata_checksums_loads_with_a_warning(toy, tmp_path):
    path = _hand_edited(residual_vector(toy).save(tmp_path / "old.safetensors"), METADATA_CHECKSUMS, None)
    with pytest.warns(UserWarning, match=r"old.safetensors: no 'metadata_checksums' .* fields .* are not"):
        vector = load(path)
    assert isinstance(vector, ResidualVector) and (vector.layer, vector.scale) == (1, 2.0)


def test_a_weight_the_model_does_not_have_is_named(toy):
    saved = model_fingerprint(toy)
    samples = saved[SAMPLES]
    assert isinstance(samples, dict)
    samples["model.language_model.layers.9.mlp.down_proj.weight"] = samples.pop(TUNED)
    assert fingerprint_difference(saved, toy) == (
        "weight 'model.language_model.layers.9.mlp.down_proj.weight' in the file, no weight of that name in this "
        "model (another model class?)"
    )
