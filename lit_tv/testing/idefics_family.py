"""The Idefics lineage beyond Idefics3: SmolVLM (a SigLIP tower, pixel shuffle, a small Llama decoder).

SmolVLM's processor writes each image as ``<fake_token_around_image><global-img>`` and its ``<image>`` tokens,
the shared tokenizer's own special tokens; its video processor needs torchvision, so that slot stays empty.
"""

from __future__ import annotations

from typing import Any, cast

from transformers import (
    PreTrainedModel,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessorPil,
    SmolVLMProcessor,
)

from lit_tv.model.compat import build_processor_without_video
from lit_tv.testing.chat_templates import CHAT_FORMATS
from lit_tv.testing.tiny_text import build_tokenizer, text_options

IMAGE = 32  # pixels per side: 4x4 patches of 8, shuffled by 2 into 4 image tokens


def build_smolvlm() -> tuple[PreTrainedModel, Any]:
    chat = CHAT_FORMATS["smolvlm"]
    tokenizer = build_tokenizer(chat.tokens)
    config = SmolVLMConfig(
        vision_config=dict(
            image_size=IMAGE,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
        ),
        text_config=dict(model_type="llama", **text_options(tokenizer)),
        scale_factor=2,
        image_token_id=cast(int, tokenizer.convert_tokens_to_ids("<image>")),
    )
    image_processor = SmolVLMImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": IMAGE}, max_image_size={"longest_edge": IMAGE}
    )
    processor = build_processor_without_video(
        SmolVLMProcessor, tokenizer, image_processor, image_seq_len=4, chat_template=chat.jinja()
    )
    return SmolVLMForConditionalGeneration(config), processor
