"""Mllama's decoder has cross-attention layers between its self-attention layers: the layout maps only the layers
that attend over the prompt, and they keep working on prompts without images, where the model skips the others."""

from __future__ import annotations

import torch
from helpers import TEMPLATE, colour_image

from lit_tv.episodes import Episode, Example
from lit_tv.interventions.hooks import patch_residual, record_heads, record_residual
from lit_tv.model.loading import VLMOptions
from lit_tv.vectors.file import layout_from_config


def test_the_layout_maps_the_self_attention_layers_and_lists_the_cross_attention_ones(zoo_vlm, zoo_folder):
    vlm = zoo_vlm("mllama")
    decoder_layers = vlm.layout.decoder.layers
    assert len(decoder_layers) == 3 and vlm.layout.cross_attention_layers == (1,)
    assert vlm.layout.layers == (decoder_layers[0], decoder_layers[2])
    assert layout_from_config(VLMOptions(str(zoo_folder("mllama")))) == vlm.layout.signature()


def test_heads_and_residual_are_read_and_written_on_a_prompt_without_images(zoo_vlm):
    vlm = zoo_vlm("mllama")
    inputs = vlm.build_inputs([Episode(query=Example("what colour?", answers=("red",)))], TEMPLATE)
    assert "pixel_values" not in inputs  # the cross-attention layer does not run
    with torch.inference_mode(), record_heads(vlm) as heads, record_residual(vlm) as residual:
        base = vlm.model(**inputs).logits
    assert heads.value.shape == (1, 2, 4, 16) and residual.value.shape == (1, 2, 64)
    with torch.inference_mode(), patch_residual(vlm, 1, residual.value[:, 1]):
        assert torch.equal(vlm.model(**inputs).logits, base)


def test_the_images_reach_the_answer_through_the_cross_attention_layer(zoo_vlm):
    """The gates of a new model's cross-attention layers are closed (tanh(0)); the tiny model's are open."""
    vlm = zoo_vlm("mllama")
    logits = [
        vlm.last_logits(vlm.build_inputs([Episode(query=Example("colour?", (colour_image(c),), ("red",)))], TEMPLATE))
        for c in ("red", "blue")
    ]
    assert (logits[0] - logits[1]).abs().max() > 1e-4
