"""A checkpoint's identity without a run (the CLI's end to end in test_checkpoints.py): checked by its model's
weights fingerprint where it records one, by model name where it was written before the fingerprint."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForImageTextToText

from lit_tv.methods.checkpoints import CheckpointMismatchError, check_identity, checkpoint_entry, method_path
from lit_tv.model.layout import discover_layout
from lit_tv.model.loading import BUILTIN_MODELS, VLMOptions
from lit_tv.vectors.fingerprint import model_fingerprint


@pytest.fixture(scope="module")
def toy():
    return AutoModelForImageTextToText.from_pretrained(BUILTIN_MODELS["lit_tv/shapes-toy"])


def method(name: str = "lit_tv/shapes-toy", **hparams: object) -> SimpleNamespace:
    """What a checkpoint is checked against: the run's model options and hyper-parameters."""
    return SimpleNamespace(model_options=VLMOptions(name), hparams=hparams)


def checkpoint(model, fingerprint: bool = True) -> dict:
    entry = checkpoint_entry(method(), discover_layout(model).signature(), model_fingerprint(model), None)
    if not fingerprint:
        del entry["fingerprint"]  # as written before checkpoints recorded it
    return {"lit_tv": entry}


def tuned(model):
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.model.language_model.layers[1].mlp.up_proj.weight.mul_(1.1)
    return other


def test_other_weights_under_the_same_name_are_refused_unless_allowed(toy):
    saved, layout, other = checkpoint(toy), discover_layout(toy).signature(), tuned(toy)
    assert method_path(method()) == saved["lit_tv"]["method"]
    check_identity(saved, "fit.ckpt", method(), layout, toy)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"fit.ckpt was fitted on model lit_tv/shapes-toy and does not match the weights .*'fingerprint': "
        r"weight 'model.language_model.layers.1.mlp.up_proj.weight'.*model.init_args.allow_other_model=true",
    ):
        check_identity(saved, "fit.ckpt", method(), layout, other)
    with pytest.warns(UserWarning, match=r"used anyway \(allow_other_model\)"):
        check_identity(saved, "fit.ckpt", method(allow_other_model=True), layout, other)


def test_the_same_weights_under_another_name_match(toy, tmp_path):
    toy.save_pretrained(tmp_path / "copy")
    layout = discover_layout(toy).signature()
    check_identity(checkpoint(toy), "fit.ckpt", method(str(tmp_path / "copy")), layout)  # before the weights load
    check_identity(checkpoint(toy), "fit.ckpt", method(str(tmp_path / "copy")), layout, toy)


def test_a_checkpoint_from_before_the_fingerprint_is_checked_by_name_with_a_warning(toy, tmp_path):
    old, layout = checkpoint(toy, fingerprint=False), discover_layout(toy).signature()
    with pytest.warns(UserWarning, match=r"old.ckpt was written before .* checked by name only"):
        check_identity(old, "old.ckpt", method(), layout, tuned(toy))
    toy.save_pretrained(tmp_path / "copy")
    with pytest.raises(CheckpointMismatchError, match=r"old.ckpt was fitted on model lit_tv/shapes-toy but"):
        check_identity(old, "old.ckpt", method(str(tmp_path / "copy")), layout)
