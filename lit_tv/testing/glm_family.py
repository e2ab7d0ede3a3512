"""Tiny random GLM-4V (GLM-4.1V-Thinking's architecture) and GLM-4.5V (its MoE text decoder) for the zoo.

GLM-4V writes an image as ``<|begin_of_image|>`` + merged-patch ``<|image|>`` tokens + ``<|end_of_image|>``,
places it with M-RoPE over half of each head's dimensions (partial rotary), and norms each attention and MLP
output again before it joins the residual stream (sandwich norms).
"""

from __future__ import annotations

from typing import Any

from transformers import (
    Glm4vConfig,
    Glm4vForConditionalGeneration,
    Glm4vImageProcessorPil,
    Glm4vMoeConfig,
    Glm4vMoeForConditionalGeneration,
    Glm4vProcessor,
    PreTrainedModel,
)

from lit_tv.model.compat import build_processor_without_video
from lit_tv.testing.chat_templates import CHAT_FORMATS
from lit_tv.testing.tiny_text import TEXT, build_tokenizer, text_options

# GLM-4V's own special tokens; the processor finds the image and video tokens by these attribute names
GLM_TOKENS: dict[str, Any] = dict(
    image_token="<|image|>",
    video_token="<|video|>",
    image_start_token="<|begin_of_image|>",
    image_end_token="<|end_of_image|>",
    video_start_token="<|begin_of_video|>",
    video_end_token="<|end_of_video|>",
)
HEAD_DIM = TEXT["hidden_size"] // TEXT["num_attention_heads"]
# rotary on half of each head (partial_rotary_factor 0.5), split over time, height and width as GLM-4.1V's 8:12:12
ROPE = dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5, mrope_section=[HEAD_DIM // 8, 1, 1])


def build_glm4v() -> tuple[PreTrainedModel, Any]:
    """One 32x32 image: 8-pixel patches merged 2x2, 4 image tokens."""
    return _build("glm4v", Glm4vConfig, Glm4vForConditionalGeneration)


def build_glm4v_moe() -> tuple[PreTrainedModel, Any]:
    """GLM-4.5V: GLM-4V's vision side and prompt, a text decoder whose layers after the first route each token to
    2 of 4 experts beside a shared one."""
    return _build(
        "glm4v_moe",
        Glm4vMoeConfig,
        Glm4vMoeForConditionalGeneration,
        n_routed_experts=4,
        num_experts_per_tok=2,
        n_shared_experts=1,
        moe_intermediate_size=32,
        first_k_dense_replace=1,
    )


def _build(family: str, config_class: type, model_class: type, **text: Any) -> tuple[PreTrainedModel, Any]:
    """The model of `config_class` (`text`: its text decoder's own options) with GLM-4V's tokens and processor,
    and the chat format of `family`."""
    chat = CHAT_FORMATS[family]
    tokenizer = build_tokenizer(chat.tokens, **GLM_TOKENS)
    ids: dict[str, Any] = {f"{name}_id": tokenizer.convert_tokens_to_ids(token) for name, token in GLM_TOKENS.items()}
    config = config_class(
        vision_config=dict(
            depth=1,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            image_size=32,
            patch_size=8,
            spatial_merge_size=2,
            temporal_patch_size=2,
            out_hidden_size=TEXT["hidden_size"],
        ),
        text_config=text_options(tokenizer, rope_parameters=ROPE, **text),
        **ids,
    )
    pixels = 2 * 32 * 32  # GLM counts an image's pixels over the two frames it is repeated into
    image_processor = Glm4vImageProcessorPil(
        patch_size=8, merge_size=2, temporal_patch_size=2, size={"shortest_edge": pixels, "longest_edge": pixels}
    )
    processor = build_processor_without_video(Glm4vProcessor, tokenizer, image_processor, chat_template=chat.jinja())
    return model_class(config), processor
