"""A tiny random Molmo 2 for the zoo (`lit_tv.testing.zoo`).

Molmo 2 writes an image as crops of ``<im_patch>`` tokens between ``<im_start>`` / ``<low_res_im_start>`` and
``<im_end>``, rows ended by ``<im_col>``, pooled by an attention adapter from two vision layers; its decoder is
Qwen3-like (QK norm). transformers ships its image processor for torchvision only, which lit_tv does not install,
so the tiny Molmo 2 comes with its tokenizer: its decoder is checked on text prompts.
"""

from __future__ import annotations

from typing import Any

from transformers import Molmo2Config, Molmo2ForConditionalGeneration, PreTrainedModel, PreTrainedTokenizerFast

from lit_tv.testing.tiny_text import TEXT, build_tokenizer, text_options

# the image tokens Molmo2Processor looks up by name, beside its image and video placeholders
MOLMO_TOKENS = ["<im_patch>", "<im_col>", "<im_start>", "<low_res_im_start>", "<frame_start>", "<im_end>",
                "<frame_end>", "<im_low>"]  # fmt: skip
HEAD_DIM = TEXT["hidden_size"] // TEXT["num_attention_heads"]


def build_molmo2() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Two vision layers (both pooled), 8-pixel patches of 32x32 crops; the special tokens in the vocabulary
    itself (no extra embedding rows)."""
    tokenizer = build_tokenizer(image_token="<|image|>", video_token="<|video|>")
    tokenizer.add_special_tokens({"additional_special_tokens": MOLMO_TOKENS})
    token_ids: dict[str, Any] = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in [
            ("image_start_token_id", "<im_start>"),
            ("low_res_image_start_token_id", "<low_res_im_start>"),
            ("image_end_token_id", "<im_end>"),
            ("image_patch_id", "<im_patch>"),
            ("frame_start_token_id", "<frame_start>"),
            ("frame_end_token_id", "<frame_end>"),
        ]
    }
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        image_size=[32, 32],
        patch_size=8,
    )
    adapter = dict(
        vision_feature_layer=[-1, -2],
        hidden_size=32,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=64,
        text_hidden_size=TEXT["hidden_size"],
    )
    text = text_options(tokenizer, head_dim=HEAD_DIM, additional_vocab_size=0)
    config = Molmo2Config(vision_config=vision, adapter_config=adapter, text_config=text, **token_ids)
    return Molmo2ForConditionalGeneration(config), tokenizer
