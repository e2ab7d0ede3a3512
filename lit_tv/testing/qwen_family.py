"""Tiny random Qwen2.5-VL, Qwen3-VL and Qwen3-VL-MoE models for the zoo (`lit_tv.testing.zoo`).

All three write an image as ``<|vision_start|>`` + merged-patch ``<|image_pad|>`` tokens + ``<|vision_end|>`` and
place it with M-RoPE (three position ids per token); Qwen3-VL interleaves the three rotary sections and adds
vision features into its first decoder layers (DeepStack), and its MoE variant routes every layer's MLP over
experts. Their processors keep a video slot whose processor needs torchvision: it is left empty, as for Qwen2-VL.
"""

from __future__ import annotations

from typing import Any

from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLMoeConfig,
    Qwen3VLMoeForConditionalGeneration,
    Qwen3VLProcessor,
)

from lit_tv.model.compat import build_processor_without_video
from lit_tv.testing.chat_templates import CHAT_FORMATS
from lit_tv.testing.tiny_text import TEXT, build_tokenizer, text_options

HEAD_DIM = TEXT["hidden_size"] // TEXT["num_attention_heads"]
# M-RoPE's temporal, height and width shares of the rotary frequencies (head_dim / 2 of them), in Qwen2-VL's
# proportions
MROPE = dict(rope_type="default", rope_theta=10000.0, mrope_section=[HEAD_DIM // 4, HEAD_DIM // 8, HEAD_DIM // 8])


def qwen_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """The config's ids of the Qwen VL special tokens, which the tiny tokenizer has under their real names."""
    tokens = {
        "image_token_id": "<|image_pad|>",
        "video_token_id": "<|video_pad|>",
        "vision_start_token_id": "<|vision_start|>",
        "vision_end_token_id": "<|vision_end|>",
    }
    return {name: tokenizer.convert_tokens_to_ids(token) for name, token in tokens.items()}


def _image_processor(patch_size: int) -> Qwen2VLImageProcessorPil:
    """One 32x32 image: 2x2 merged patches, 4 image tokens (Qwen3-VL uses Qwen2-VL's image processor too)."""
    pixels = (4 * patch_size) ** 2
    return Qwen2VLImageProcessorPil(
        patch_size=patch_size, merge_size=2, temporal_patch_size=2, min_pixels=pixels, max_pixels=pixels
    )


def _vision_tower(**options: Any) -> dict:
    """A two-block vision tower of 8-pixel patches merged 2x2 into the text width; `options`: the version's own."""
    return dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=TEXT["hidden_size"],
        patch_size=8,
        spatial_merge_size=2,
        temporal_patch_size=2,
        **options,
    )


def _qwen3_vision() -> dict:
    """Qwen3-VL's tower: its first block feeds DeepStack features to the text decoder."""
    return _vision_tower(num_position_embeddings=16, deepstack_visual_indexes=[0])


def build_qwen2_5_vl() -> tuple[PreTrainedModel, Any]:
    """Qwen2.5-VL: windowed vision attention (one full-attention block here), M-RoPE text decoder."""
    chat = CHAT_FORMATS["qwen2_5_vl"]
    tokenizer = build_tokenizer(chat.tokens)
    config = Qwen2_5_VLConfig(
        vision_config=_vision_tower(window_size=32, fullatt_block_indexes=[1]),
        text_config=text_options(tokenizer, rope_parameters=MROPE),
        **qwen_token_ids(tokenizer),
    )
    processor = build_processor_without_video(
        Qwen2_5_VLProcessor, tokenizer, _image_processor(8), chat_template=chat.jinja()
    )
    return Qwen2_5_VLForConditionalGeneration(config), processor


def _qwen3_text(tokenizer: PreTrainedTokenizerFast, **overrides: Any) -> dict:
    rope = dict(MROPE, mrope_interleaved=True)
    return text_options(tokenizer, head_dim=HEAD_DIM, rope_parameters=rope, **overrides)


def build_qwen3_vl() -> tuple[PreTrainedModel, Any]:
    """Qwen3-VL: interleaved M-RoPE, DeepStack vision features added in the decoder's first layers."""
    chat = CHAT_FORMATS["qwen3_vl"]
    tokenizer = build_tokenizer(chat.tokens)
    config = Qwen3VLConfig(
        vision_config=_qwen3_vision(), text_config=_qwen3_text(tokenizer), **qwen_token_ids(tokenizer)
    )
    processor = build_processor_without_video(
        Qwen3VLProcessor, tokenizer, _image_processor(8), chat_template=chat.jinja()
    )
    return Qwen3VLForConditionalGeneration(config), processor


def build_qwen3_vl_moe() -> tuple[PreTrainedModel, Any]:
    """Qwen3-VL-MoE: Qwen3-VL whose decoder MLPs are sparse mixtures of experts (4 experts, 2 per token)."""
    chat = CHAT_FORMATS["qwen3_vl_moe"]
    tokenizer = build_tokenizer(chat.tokens)
    text = _qwen3_text(tokenizer, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32)
    config = Qwen3VLMoeConfig(vision_config=_qwen3_vision(), text_config=text, **qwen_token_ids(tokenizer))
    processor = build_processor_without_video(
        Qwen3VLProcessor, tokenizer, _image_processor(8), chat_template=chat.jinja()
    )
    return Qwen3VLMoeForConditionalGeneration(config), processor
