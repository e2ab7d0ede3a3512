"""Head and residual interventions are exact on every zoo architecture."""

from __future__ import annotations

import pytest
import torch
from helpers import TEMPLATE, episodes_for, zoo_params

from lit_tv.interventions.hooks import patch_residual, record_heads, record_residual, replace_heads

pytestmark = pytest.mark.parametrize("name", zoo_params())  # beyond FAST_ZOO: slow


def _forward(vlm, inputs) -> torch.Tensor:
    with torch.inference_mode():
        return vlm.model(**inputs).logits


@pytest.mark.slow
def test_writing_back_recorded_heads_is_bit_identical(zoo_vlm, name):
    vlm = zoo_vlm(name)
    inputs = vlm.build_inputs(episodes_for(vlm), TEMPLATE)
    with record_heads(vlm) as recording:
        base = _forward(vlm, inputs)
    layout = vlm.layout
    assert recording.value.shape == (3, layout.num_layers, layout.num_heads, layout.head_dim)
    everything = torch.ones(3, layout.num_layers, layout.num_heads, dtype=torch.bool)
    with replace_heads(vlm, recording.value, everything):
        assert torch.equal(_forward(vlm, inputs), base)


@pytest.mark.slow
def test_replacing_one_head_changes_only_the_last_position(zoo_vlm, name):
    vlm = zoo_vlm(name)
    inputs = vlm.build_inputs(episodes_for(vlm), TEMPLATE)
    base = _forward(vlm, inputs)
    layout = vlm.layout
    mask = torch.zeros(layout.num_layers, layout.num_heads, dtype=torch.bool)
    mask[0, 1] = True
    values = torch.full((layout.num_layers, layout.num_heads, layout.head_dim), 3.0)
    with replace_heads(vlm, values, mask):
        patched = _forward(vlm, inputs)
    assert_only_the_last_position_moved(vlm, patched, base)


def assert_only_the_last_position_moved(vlm, patched: torch.Tensor, base: torch.Tensor) -> None:
    """The last position's logits moved; the earlier ones did not, except in a prefix LM (PaliGemma), whose
    prompt positions see the patched one from the next layer on."""
    assert (patched[:, -1] - base[:, -1]).abs().amax(dim=-1).min() > 1e-4
    assert torch.equal(patched[:, :-1], base[:, :-1]) != vlm.prompt_attends_both_ways


@pytest.mark.slow
def test_per_row_masks_in_one_batch_equal_unbatched_runs(zoo_vlm, name):
    vlm = zoo_vlm(name)
    episodes = episodes_for(vlm)
    layout = vlm.layout
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(len(episodes), layout.num_layers, layout.num_heads, generator=generator) < 0.5
    values = torch.randn(layout.num_layers, layout.num_heads, layout.head_dim, generator=generator)
    inputs = vlm.build_inputs(episodes, TEMPLATE)
    assert inputs["attention_mask"][:, 0].min() == 0, "episodes should need left padding"
    with replace_heads(vlm, values, masks):
        batched = vlm.last_logits(inputs)
        batched_tokens = vlm.generate(inputs, max_new_tokens=4)
    for row, episode in enumerate(episodes):
        single = vlm.build_inputs([episode], TEMPLATE)
        with replace_heads(vlm, values, masks[row]):
            torch.testing.assert_close(vlm.last_logits(single)[0], batched[row], atol=1e-5, rtol=0)
            assert vlm.generate(single, max_new_tokens=4)[0] == batched_tokens[row]


def _patched_inputs_seen(vlm, inputs, policy: str, values, mask) -> list[torch.Tensor]:
    """The out-projection input at the last position of every forward call, after patching."""
    seen = []
    with replace_heads(vlm, values, mask, policy=policy):
        # registered after the patch hook, so it runs after it and sees the patched input
        spy = vlm.layout.out_projections[0].register_forward_pre_hook(
            lambda module, args: seen.append(args[0][:, -1].clone())
        )
        try:
            vlm.generate(inputs, max_new_tokens=3)
        finally:
            spy.remove()
    return seen


def test_prompt_policy_patches_prefill_only_and_every_token_policy_patches_all(zoo_vlm, name):
    vlm = zoo_vlm(name)
    layout = vlm.layout
    inputs = vlm.build_inputs(episodes_for(vlm)[:2], TEMPLATE)
    mask = torch.zeros(layout.num_layers, layout.num_heads, dtype=torch.bool)
    mask[0, 0] = True
    values = torch.full((layout.num_layers, layout.num_heads, layout.head_dim), 7.0)
    target = torch.full((2, layout.head_dims[0]), 7.0)  # layer 0's heads: narrower than head_dim in Gemma 4

    def head0(seen_input: torch.Tensor) -> torch.Tensor:
        return seen_input[:, : layout.head_dims[0]].float()

    prompt_only = _patched_inputs_seen(vlm, inputs, "prompt", values, mask)
    assert len(prompt_only) == 3  # prefill + two decode steps (the third token needs no forward)
    assert torch.equal(head0(prompt_only[0]), target)
    assert all(not torch.equal(head0(step), target) for step in prompt_only[1:])
    every_token = _patched_inputs_seen(vlm, inputs, "every_token", values, mask)
    assert all(torch.equal(head0(step), target) for step in every_token)


def test_residual_replaced_with_itself_is_identity_and_logit_lens_matches_logits(zoo_vlm, name):
    vlm = zoo_vlm(name)
    inputs = vlm.build_inputs(episodes_for(vlm), TEMPLATE)
    with record_residual(vlm) as recording:
        base = _forward(vlm, inputs)
    assert recording.value.shape == (3, vlm.layout.num_layers, vlm.layout.hidden_size)
    torch.testing.assert_close(vlm.logit_lens(recording.value[:, -1]), base[:, -1].float(), atol=1e-5, rtol=1e-5)
    for layer in range(vlm.layout.num_layers):
        with patch_residual(vlm, layer, recording.value[:, layer]):
            assert torch.equal(_forward(vlm, inputs), base)


def test_residual_add_changes_the_last_position_only(zoo_vlm, name):
    vlm = zoo_vlm(name)
    inputs = vlm.build_inputs(episodes_for(vlm), TEMPLATE)
    base = _forward(vlm, inputs)
    vector = torch.randn(vlm.layout.hidden_size, generator=torch.Generator().manual_seed(0))  # not constant:
    with patch_residual(vlm, 0, vector, mode="add", scale=5.0):  # LayerNorm would remove a constant shift
        added = _forward(vlm, inputs)
    assert_only_the_last_position_moved(vlm, added, base)


def test_hooks_are_removed_even_when_the_body_raises(zoo_vlm, name):
    vlm = zoo_vlm(name)
    layout = vlm.layout
    mask = torch.ones(layout.num_layers, layout.num_heads, dtype=torch.bool)
    values = torch.zeros(layout.num_layers, layout.num_heads, layout.head_dim)

    def hook_count() -> int:
        return sum(len(module._forward_pre_hooks) + len(module._forward_hooks) for module in vlm.model.modules())

    before = hook_count()
    with pytest.raises(RuntimeError, match="boom"):
        zero = torch.zeros(layout.hidden_size)
        with replace_heads(vlm, values, mask), record_residual(vlm), patch_residual(vlm, 0, zero):
            assert hook_count() > before
            raise RuntimeError("boom")
    assert hook_count() == before
