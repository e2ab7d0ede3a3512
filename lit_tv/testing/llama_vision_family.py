"""Tiny random Llama vision models for the zoo (`lit_tv.testing.zoo`): Mllama (Llama 3.2 Vision) and Llama 4.

Mllama's decoder interleaves cross-attention layers, which read the image features and not the prompt, between
self-attention layers; an image is one ``<|image|>`` token in the prompt. Its cross-attention layers are
tanh-gated, and the gates start at zero (a new model ignores its images): the tiny model opens them, as
training does, so that its images matter.

Llama 4's decoder routes MLPs over experts, leaves rotary positions out of every few layers (NoPE) and attends
in chunks in the others. transformers ships its image processor for torchvision only, which lit_tv does not
install, so the tiny Llama 4 comes with its tokenizer: its decoder is checked on text prompts.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from transformers import (
    Llama4Config,
    Llama4ForConditionalGeneration,
    MllamaConfig,
    MllamaForConditionalGeneration,
    MllamaImageProcessorPil,
    MllamaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from lit_tv.testing.chat_templates import CHAT_FORMATS
from lit_tv.testing.tiny_text import TEXT, build_tokenizer, text_options

CROSS_ATTENTION_LAYERS = [1]  # of the tiny Mllama's three decoder layers


def build_mllama() -> tuple[PreTrainedModel, Any]:
    """Self-attention, cross-attention, self-attention layers; one 32x32 tile per image (16 patches + class)."""
    chat = CHAT_FORMATS["mllama"]
    tokenizer = build_tokenizer(chat.tokens, image_token="<|image|>", python_token="<|python_tag|>")
    config = MllamaConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_global_layers=1,
            attention_heads=2,
            intermediate_layers_indices=[0],
            vision_output_dim=2 * 32,  # the last layer's features beside each intermediate layer's
            image_size=32,
            patch_size=8,
            max_num_tiles=1,
            supported_aspect_ratios=[[1, 1]],
        ),
        text_config=text_options(tokenizer, num_hidden_layers=3, cross_attention_layers=CROSS_ATTENTION_LAYERS),
        image_token_index=cast(int, tokenizer.convert_tokens_to_ids("<|image|>")),
    )
    model = MllamaForConditionalGeneration(config)
    with torch.no_grad():
        for index in CROSS_ATTENTION_LAYERS:
            layer = model.model.language_model.layers[index]
            layer.cross_attn_attn_gate.fill_(1.0)
            layer.cross_attn_mlp_gate.fill_(1.0)
    image_processor = MllamaImageProcessorPil(size={"height": 32, "width": 32}, max_image_tiles=1)
    return model, MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat.jinja())


def build_llama4() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Llama 4 with 4 experts (1 per token) in every layer, the second layer without RoPE, 16-token attention
    chunks; its vision tower takes 32x32 images as 4 ``<|image|>`` tokens (8-pixel patches, pixel-shuffled)."""
    tokenizer = build_tokenizer(image_token="<|image|>")
    text = text_options(
        tokenizer,
        head_dim=TEXT["hidden_size"] // TEXT["num_attention_heads"],
        intermediate_size_mlp=TEXT["intermediate_size"],
        num_local_experts=4,
        num_experts_per_tok=1,
        no_rope_layer_interval=2,
        attention_chunk_size=16,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=4 * 32,  # the pixel shuffle's width: 2x2 patches side by side
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        vision_output_dim=TEXT["hidden_size"],
        projector_input_dim=TEXT["hidden_size"],
        projector_output_dim=TEXT["hidden_size"],
    )
    config = Llama4Config(
        vision_config=vision,
        text_config=text,
        image_token_index=cast(int, tokenizer.convert_tokens_to_ids("<|image|>")),
    )
    return Llama4ForConditionalGeneration(config), tokenizer
