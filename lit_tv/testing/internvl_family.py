"""InternVL (InternViT + pixel shuffle + a Qwen2 decoder), tiny and random, with its own processor and image tokens.

The hub checkpoints that load natively (``OpenGVLab/InternVL3-*-hf``) mark each image as ``<img>``, then
``<IMG_CONTEXT>`` per vision token, then ``</img>``; the tokenizer names them so the processor finds them.
"""

from __future__ import annotations

from typing import Any, cast

from transformers import (
    GotOcr2ImageProcessorPil,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    PreTrainedModel,
)

from lit_tv.model.compat import build_processor_without_video
from lit_tv.testing.chat_templates import CHAT_FORMATS
from lit_tv.testing.tiny_text import build_tokenizer, text_options

IMAGE = 32  # pixels per side: one tile, 4x4 patches of 8, shuffled to 2x2 = 4 context tokens
PATCH = 8
INTERNVL_TOKENS = ("<img>", "</img>", "<IMG_CONTEXT>", "<video>")


def build_internvl() -> tuple[PreTrainedModel, Any]:
    chat = CHAT_FORMATS["internvl"]
    tokenizer = build_tokenizer(
        (*INTERNVL_TOKENS, *chat.tokens),
        start_image_token="<img>",
        end_image_token="</img>",
        context_image_token="<IMG_CONTEXT>",
        video_token="<video>",
    )
    config = InternVLConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=IMAGE,
            patch_size=PATCH,
        ),
        text_config=dict(model_type="qwen2", **text_options(tokenizer)),
        image_token_id=cast(int, tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")),
        image_seq_length=4,
        downsample_ratio=0.5,
    )
    image_processor = GotOcr2ImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, max_patches=1)
    processor = build_processor_without_video(
        InternVLProcessor, tokenizer, image_processor, image_seq_length=4, chat_template=chat.jinja()
    )
    return InternVLForConditionalGeneration(config), processor
