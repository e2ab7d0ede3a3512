"""Heads of two sizes in one model (Gemma 4: its global layer's heads twice as wide as its sliding layer's): each
head is recorded, replaced, averaged, projected and saved at its own layer's size inside one
`[layers, heads, head_dim]` vector, a narrower layer's heads in their first entries with zeros after."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import TEMPLATE, episodes_for

from lit_tv.interventions.averaging import mean_head_activations
from lit_tv.interventions.hooks import record_heads, replace_heads
from lit_tv.methods.function_vectors import function_vector
from lit_tv.model.vlm import FrozenVLM
from lit_tv.vectors.file import TaskVectorError, TaskVectorMismatchError
from lit_tv.vectors.kinds import HeadVector, load

SLIDING, GLOBAL = 0, 1  # the tiny Gemma 4's layers: heads of 16 and of 32 entries
NARROW = 16


@pytest.fixture
def gemma4(zoo_vlm) -> FrozenVLM:
    vlm = zoo_vlm("gemma4")
    assert vlm.layout.head_dims == (NARROW, 2 * NARROW)
    return vlm


def _recorded(vlm: FrozenVLM) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """The zoo episodes' inputs, their logits and their recorded heads `[rows, layers, heads, head_dim]`."""
    inputs = vlm.build_inputs(episodes_for(vlm), TEMPLATE)
    with torch.inference_mode(), record_heads(vlm) as recording:
        logits = vlm.model(**inputs).logits
    return inputs, logits, recording.value


def _logits(vlm: FrozenVLM, inputs: dict, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(), replace_heads(vlm, values, mask):
        return vlm.model(**inputs).logits


def test_a_wide_head_is_recorded_and_written_whole_and_a_narrow_ones_padding_is_no_part_of_it(gemma4):
    inputs, base, recorded = _recorded(gemma4)
    assert recorded.shape == (3, 2, 4, 2 * NARROW)
    assert not recorded[:, SLIDING, :, NARROW:].any(), "a narrow head's entries after its own are zeros"
    assert recorded[:, GLOBAL, :, NARROW:].any(dim=-1).all(), "a wide head's upper half is recorded"
    one_wide_head = torch.zeros(3, 2, 4, dtype=torch.bool)
    one_wide_head[:, GLOBAL, 2] = True
    assert torch.equal(_logits(gemma4, inputs, recorded, one_wide_head), base)
    upper_half_moved = recorded.clone()
    upper_half_moved[:, GLOBAL, 2, NARROW:] += 1.0
    moved = _logits(gemma4, inputs, upper_half_moved, one_wide_head)
    assert (moved[:, -1] - base[:, -1]).abs().amax(dim=-1).min() > 1e-4, "the wide head was cut to the narrow size"
    narrow_heads = torch.zeros(3, 2, 4, dtype=torch.bool)
    narrow_heads[:, SLIDING] = True
    padding_filled = recorded.clone()
    padding_filled[:, SLIDING, :, NARROW:] = 5.0
    assert torch.equal(_logits(gemma4, inputs, padding_filled, narrow_heads), base)


def test_an_mtv_mean_keeps_a_narrow_layers_padding_zero(gemma4):
    _, _, recorded = _recorded(gemma4)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, barebones=True)
    mean = mean_head_activations(trainer, gemma4, TEMPLATE, episodes_for(gemma4), batch_size=2)
    assert mean.shape == (2, 4, 2 * NARROW)
    assert not mean[SLIDING, :, NARROW:].any()
    assert mean[SLIDING, :, :NARROW].any(dim=-1).all() and mean[GLOBAL, :, NARROW:].any(dim=-1).all()
    torch.testing.assert_close(mean, recorded.float().mean(0), atol=1e-5, rtol=1e-5)


def test_a_function_vector_projects_each_head_at_its_layers_size(gemma4):
    layout = gemma4.layout
    means = torch.randn(2, 4, 2 * NARROW, generator=torch.Generator().manual_seed(0))
    means[SLIDING, :, NARROW:] = 0
    heads = torch.zeros(2, 4, dtype=torch.bool)
    heads[SLIDING, 1] = heads[GLOBAL, 2] = True
    narrow = layout.out_projections[SLIDING].weight[:, NARROW : 2 * NARROW] @ means[SLIDING, 1, :NARROW]
    wide = layout.out_projections[GLOBAL].weight[:, 4 * NARROW : 6 * NARROW] @ means[GLOBAL, 2]
    torch.testing.assert_close(function_vector(gemma4, means, heads), narrow + wide, atol=1e-5, rtol=1e-5)


def _head_vector(vlm: FrozenVLM, means: torch.Tensor) -> HeadVector:
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[SLIDING, 0] = mask[GLOBAL, 3] = True
    vector = HeadVector(tasks=["t"], method="mtv", means=means, heads=HeadVector.indices(mask), theta=torch.zeros(2, 4))
    return vector.with_model(vlm.model, "gemma4")


def test_a_vector_file_records_the_head_sizes_and_is_refused_by_other_sizes(gemma4, tmp_path):
    _, _, recorded = _recorded(gemma4)
    signature = gemma4.layout.signature()
    saved = _head_vector(gemma4, recorded.float().mean(0)).save(tmp_path / "mtv.safetensors")
    vector = load(saved)
    assert vector.layout["head_dims"] == [NARROW, 2 * NARROW]
    vector.check(signature, gemma4.model)
    one_size = {key: value for key, value in signature.items() if key != "head_dims"}  # every head 32 wide
    with pytest.raises(TaskVectorMismatchError, match=r"field 'layout'"):
        vector.check(one_size)
    with pytest.raises(TaskVectorMismatchError, match=r"field 'layout'"):
        vector.check({**signature, "head_dims": [2 * NARROW, NARROW]})
    filled = recorded.float().mean(0)
    filled[SLIDING, :, NARROW:] = 1.0
    altered = load(_head_vector(gemma4, filled).save(tmp_path / "filled.safetensors"))
    with pytest.raises(TaskVectorError, match=r"'mean_activations' of layer 0 holds values after its heads' 16"):
        altered.check(signature, gemma4.model)
