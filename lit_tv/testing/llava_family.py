"""The LLaVA lineage beyond LLaVA-1.5: LLaVA-NeXT and LLaVA-OneVision (any-resolution tiles), Aya Vision, and
Mistral 3 (Pixtral's vision encoder).

Each is a tiny random model of the real architecture with the family's own processor; the image grid is
one 32-pixel tile so a prompt stays a few dozen tokens. Mistral 3's processor (PixtralProcessor) imports
torchvision, which lit_tv does not install, so it comes with its tokenizer: its decoder is checked on text prompts.
"""

from __future__ import annotations

from typing import Any, cast

from transformers import (
    AyaVisionConfig,
    AyaVisionForConditionalGeneration,
    AyaVisionProcessor,
    CLIPVisionConfig,
    GotOcr2ImageProcessorPil,
    LlamaConfig,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessorPil,
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaOnevisionProcessor,
    Mistral3Config,
    Mistral3ForConditionalGeneration,
    PixtralVisionConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    SiglipVisionConfig,
)

from lit_tv.model.compat import build_processor_without_video
from lit_tv.testing.chat_templates import CHAT_FORMATS
from lit_tv.testing.tiny_text import build_tokenizer, text_options

IMAGE = 32  # pixels per side of the one tile every image becomes
PATCH = 8
VISION: dict[str, Any] = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
EDGE = {"height": IMAGE, "width": IMAGE}


def build_llava_next() -> tuple[PreTrainedModel, Any]:
    """LLaVA-NeXT: a CLIP tower over the image and its any-resolution tiles (here a single 32-pixel grid)."""
    tokenizer = build_tokenizer(image_token="<image>")
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(image_size=IMAGE, patch_size=PATCH, projection_dim=32, **VISION),
        text_config=LlamaConfig(**text_options(tokenizer)),
        image_token_index=cast(int, tokenizer.convert_tokens_to_ids("<image>")),
        image_grid_pinpoints=[[IMAGE, IMAGE]],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": IMAGE}, crop_size=EDGE, image_grid_pinpoints=[[IMAGE, IMAGE]]
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_FORMATS["llava_next"].jinja(),
    )
    return LlavaNextForConditionalGeneration(config), processor


def build_llava_onevision() -> tuple[PreTrainedModel, Any]:
    """LLaVA-OneVision: a SigLIP tower (no class token) and a Qwen2 decoder; its video processor needs
    torchvision, so that slot stays empty."""
    chat = CHAT_FORMATS["llava_onevision"]
    tokenizer = build_tokenizer(chat.tokens, image_token="<image>", video_token="<|video_pad|>")
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(image_size=IMAGE, patch_size=PATCH, **VISION),
        text_config=dict(model_type="qwen2", **text_options(tokenizer)),
        image_token_index=cast(int, tokenizer.convert_tokens_to_ids("<image>")),
        video_token_index=cast(int, tokenizer.convert_tokens_to_ids("<|video_pad|>")),
        image_grid_pinpoints=[[IMAGE, IMAGE]],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    image_processor = LlavaOnevisionImageProcessorPil(size=EDGE, image_grid_pinpoints=[[IMAGE, IMAGE]])
    processor = build_processor_without_video(
        LlavaOnevisionProcessor,
        tokenizer,
        image_processor,
        num_image_tokens=(IMAGE // PATCH) ** 2,
        vision_feature_select_strategy="full",
        chat_template=chat.jinja(),
    )
    return LlavaOnevisionForConditionalGeneration(config), processor


AYA_TOKENS = ("<|START_OF_IMG|>", "<|END_OF_IMG|>", "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>", "TILE", "TILE_GLOBAL")


def build_aya_vision() -> tuple[PreTrainedModel, Any]:
    """Aya Vision: SigLIP, pixel shuffle by 2 (4 patch tokens per 32-pixel tile), a Cohere2 decoder whose
    sliding-window and global layers alternate."""
    chat = CHAT_FORMATS["aya_vision"]
    tokenizer = build_tokenizer((*AYA_TOKENS, *chat.tokens))
    config = AyaVisionConfig(
        vision_config=SiglipVisionConfig(image_size=IMAGE, patch_size=PATCH, **VISION),
        text_config=dict(
            model_type="cohere2",
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
            **text_options(tokenizer),
        ),
        downsample_factor=2,
        image_token_index=cast(int, tokenizer.convert_tokens_to_ids("<|IMG_PATCH|>")),
    )
    image_processor = GotOcr2ImageProcessorPil(size=EDGE, max_patches=1)
    processor = AyaVisionProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        img_size=IMAGE,
        downsample_factor=2,
        chat_template=chat.jinja(),
    )
    return AyaVisionForConditionalGeneration(config), processor


PIXTRAL_TOKENS = ("[IMG]", "[IMG_BREAK]", "[IMG_END]")


def build_mistral3() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Mistral 3 (Mistral Small 3.1): a Pixtral encoder (2-D RoPE over patches, rows ended by [IMG_BREAK]), its
    patches merged 2x2 into the projector, a Mistral decoder with a sliding window."""
    tokenizer = build_tokenizer(PIXTRAL_TOKENS)
    config = Mistral3Config(
        vision_config=PixtralVisionConfig(image_size=IMAGE, patch_size=PATCH, **VISION),
        text_config=dict(model_type="mistral", sliding_window=8, **text_options(tokenizer)),
        image_token_index=cast(int, tokenizer.convert_tokens_to_ids("[IMG]")),
        spatial_merge_size=2,
    )
    return Mistral3ForConditionalGeneration(config), tokenizer
