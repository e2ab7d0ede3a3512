"""Families whose processor transformers ships for torchvision only (Llama 4, Mistral 3, Molmo 2; lit_tv runs without
torchvision): their decoders pass every zoo model's intervention checks on text prompts, built in memory with a
tokenizer, and a saved one is refused by name, before its weights load, where torchvision is missing."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import TEMPLATE, episodes_for
from interventions import test_interventions as zoo_checks
from methods.test_random_heads import (  # parametrized over the zoo there: called, not collected, here
    test_answers_over_one_prefix_equal_a_generate_per_head_set as one_prefix_answers_equal_generate,
)
from transformers import AutoModelForImageTextToText

from lit_tv.interventions.shared_prefix import fork_last_token
from lit_tv.model.loading import ModelLoadError
from lit_tv.model.vlm import FrozenVLM
from lit_tv.testing.zoo import TORCHVISION_FAMILIES

pytestmark = pytest.mark.parametrize("name", sorted(TORCHVISION_FAMILIES))
# the intervention checks every zoo model passes, collected here too: on these decoders (this module's `zoo_vlm`)
test_writing_back_recorded_heads_is_bit_identical = zoo_checks.test_writing_back_recorded_heads_is_bit_identical
test_replacing_one_head_changes_only_the_last_position = (
    zoo_checks.test_replacing_one_head_changes_only_the_last_position
)
test_per_row_masks_in_one_batch_equal_unbatched_runs = zoo_checks.test_per_row_masks_in_one_batch_equal_unbatched_runs
test_prompt_policy_patches_prefill_only_and_every_token_policy_patches_all = (
    zoo_checks.test_prompt_policy_patches_prefill_only_and_every_token_policy_patches_all
)
test_residual_replaced_with_itself_is_identity_and_logit_lens_matches_logits = (
    zoo_checks.test_residual_replaced_with_itself_is_identity_and_logit_lens_matches_logits
)
test_residual_add_changes_the_last_position_only = zoo_checks.test_residual_add_changes_the_last_position_only
test_hooks_are_removed_even_when_the_body_raises = zoo_checks.test_hooks_are_removed_even_when_the_body_raises
# what a hub folder of each names as its processors
PROCESSORS = {
    "llama4": ("Llama4Processor", "Llama4ImageProcessor"),
    "mistral3": ("PixtralProcessor", "PixtralImageProcessor"),
    "molmo2": ("Molmo2Processor", "Molmo2ImageProcessor"),
}


@pytest.fixture(scope="module")
def zoo_vlm():
    """name -> FrozenVLM of the family's tiny model and its tokenizer (text prompts only), built once."""
    built: dict[str, FrozenVLM] = {}

    def get(name: str) -> FrozenVLM:
        if name not in built:
            torch.manual_seed(0)
            built[name] = FrozenVLM(*TORCHVISION_FAMILIES[name](), name=name)
        return built[name]

    return get


def test_the_decoder_layout_is_found_below_the_language_model(zoo_vlm, name):
    vlm = zoo_vlm(name)
    layout = vlm.layout
    assert (layout.num_layers, layout.num_heads, layout.head_dim, layout.hidden_size) == (2, 4, 16, 64)
    assert layout.decoder.layers[0] is layout.layers[0]  # Llama 4's language model is a causal LM: its base model
    assert not vlm.is_multimodal


@pytest.mark.slow
def test_one_token_answers_over_one_prefix_equal_generate(zoo_vlm, name, monkeypatch):
    one_prefix_answers_equal_generate(zoo_vlm, name, monkeypatch)


def test_rows_over_one_prefix_score_as_the_plain_forward(zoo_vlm, name):
    """Llama 4 attends in 16-token chunks: a longer prompt's rows must not share its prefix through a 4-D mask,
    which would let the last token see past its chunk."""
    vlm = zoo_vlm(name)
    for episode in episodes_for(vlm):
        inputs = vlm.build_inputs([episode], TEMPLATE)
        plain = vlm.last_logits(inputs)[0]
        torch.testing.assert_close(fork_last_token(vlm, inputs, 3).logits(), plain.expand(3, -1), atol=1e-5, rtol=0)


def test_loads_in_bfloat16(name, tmp_path):
    model, tokenizer = TORCHVISION_FAMILIES[name]()
    model.save_pretrained(tmp_path)
    vlm = FrozenVLM(AutoModelForImageTextToText.from_pretrained(tmp_path, dtype=torch.bfloat16), tokenizer)
    inputs = vlm.build_inputs(episodes_for(vlm), TEMPLATE)
    assert vlm.dtype == torch.bfloat16 and torch.isfinite(vlm.last_logits(inputs)).all()


def test_a_saved_model_is_refused_by_name_before_its_weights_load(name, tmp_path, monkeypatch):
    model, tokenizer = TORCHVISION_FAMILIES[name]()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    processor, image_processor = PROCESSORS[name]
    (tmp_path / "processor_config.json").write_text(json.dumps({"processor_class": processor}))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": image_processor}))
    loads = []
    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", lambda *args, **kwargs: loads.append(args))
    with pytest.raises(ModelLoadError, match=rf"(?s)\({name!r}\) has a processor that transformers ships for "
                       rf"torchvision only, which is not installed .*({image_processor}|{processor})"):  # fmt: skip
        FrozenVLM.from_pretrained(tmp_path)
    assert loads == []
