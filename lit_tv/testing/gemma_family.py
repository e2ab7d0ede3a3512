"""Google's VLMs: PaliGemma (SigLIP + Gemma, a prefix of image tokens), Gemma 3 (SigLIP pooled to a few soft
tokens, sliding-window and global layers) and Gemma 4 (global layers with wider heads).

Tiny random models of the real architectures with the families' own processors and special tokens.
"""

from __future__ import annotations

from typing import Any, cast

from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    Gemma4Config,
    Gemma4ForConditionalGeneration,
    Gemma4ImageProcessorPil,
    Gemma4Processor,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedModel,
    SiglipImageProcessorPil,
)

from lit_tv.model.compat import build_processor_without_video
from lit_tv.testing.chat_templates import CHAT_FORMATS
from lit_tv.testing.tiny_text import TEXT, build_tokenizer, text_options

IMAGE = 32  # pixels per side
PATCH = 8
HEAD_DIM = TEXT["hidden_size"] // TEXT["num_attention_heads"]  # Gemma's default head size (256) is not the zoo's
SIGLIP: dict[str, Any] = dict(
    model_type="siglip_vision_model",
    image_size=IMAGE,
    patch_size=PATCH,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
)
GEMMA3_TOKENS = ("<start_of_image>", "<end_of_image>", "<image_soft_token>")


def build_gemma3() -> tuple[PreTrainedModel, Any]:
    """Gemma 3: a sliding-window layer then a global one, the image pooled to 4 soft tokens between markers."""
    chat = CHAT_FORMATS["gemma3"]
    tokenizer = build_tokenizer(
        (*GEMMA3_TOKENS, *chat.tokens),
        boi_token="<start_of_image>",
        eoi_token="<end_of_image>",
        image_token="<image_soft_token>",
    )
    ids: dict[str, Any] = {name: tokenizer.convert_tokens_to_ids(token) for name, token in zip(
        ("boi_token_index", "eoi_token_index", "image_token_index"), GEMMA3_TOKENS, strict=True)}  # fmt: skip
    config = Gemma3Config(
        vision_config=SIGLIP,
        text_config=text_options(
            tokenizer,
            model_type="gemma3_text",
            head_dim=HEAD_DIM,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
        ),
        mm_tokens_per_image=4,
        **ids,
    )
    image_processor = Gemma3ImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, do_pan_and_scan=False)
    processor = Gemma3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_length=4, chat_template=chat.jinja()
    )
    return Gemma3ForConditionalGeneration(config), processor


def build_paligemma() -> tuple[PreTrainedModel, Any]:
    """PaliGemma: every SigLIP patch a token (16 per image) before BOS and the prompt, which the processor ends
    with a newline; image and prompt attend both ways (a prefix LM), the answer causally."""
    tokenizer = build_tokenizer(image_token="<image>")
    image_processor = SiglipImageProcessorPil(
        size={"height": IMAGE, "width": IMAGE}, image_seq_length=(IMAGE // PATCH) ** 2
    )
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)  # adds its location tokens
    config = PaliGemmaConfig(
        vision_config=SIGLIP,
        text_config=text_options(tokenizer, model_type="gemma", head_dim=HEAD_DIM),
        image_token_index=cast(int, tokenizer.convert_tokens_to_ids("<image>")),
        projection_dim=TEXT["hidden_size"],
        hidden_size=TEXT["hidden_size"],
        vocab_size=len(tokenizer),
    )
    return PaliGemmaForConditionalGeneration(config), processor


GEMMA4_TOKENS = ("<|image>", "<image|>", "<|image|>", "<|audio>", "<audio|>", "<|audio|>", "<|video|>")


def build_gemma4() -> tuple[PreTrainedModel, Any]:
    """Gemma 4: a sliding-window layer then a global one whose heads are twice as wide (as the real 256 and 512),
    a vision tower pooling 2x2 patches into soft tokens (at least 70 per image) between markers; its audio and
    video parts stay empty."""
    boi, eoi, image, boa, eoa, audio, video = GEMMA4_TOKENS
    chat = CHAT_FORMATS["gemma4"]
    tokenizer = build_tokenizer(
        (*GEMMA4_TOKENS, *chat.tokens),
        boi_token=boi,
        eoi_token=eoi,
        image_token=image,
        boa_token=boa,
        eoa_token=eoa,
        audio_token=audio,
    )
    ids: dict[str, Any] = {name: tokenizer.convert_tokens_to_ids(token) for name, token in [
        ("boi_token_id", boi), ("eoi_token_id", eoi), ("image_token_id", image), ("video_token_id", video),
        ("boa_token_id", boa), ("eoa_token_index", eoa), ("audio_token_id", audio)]}  # fmt: skip
    config = Gemma4Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=16,
            patch_size=PATCH,
            pooling_kernel_size=2,
            position_embedding_size=64,
        ),
        text_config=text_options(
            tokenizer,
            model_type="gemma4_text",
            head_dim=HEAD_DIM,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
            global_head_dim=2 * HEAD_DIM,  # as the real 256 / 512: a head vector pads the sliding layer's heads
            hidden_size_per_layer_input=16,
            vocab_size_per_layer_input=len(tokenizer),
        ),
        audio_config=None,
        **ids,
    )
    image_processor = Gemma4ImageProcessorPil(patch_size=PATCH, max_soft_tokens=70, pooling_kernel_size=2)
    processor = build_processor_without_video(
        Gemma4Processor, tokenizer, image_processor, image_seq_length=4, chat_template=chat.jinja()
    )
    return Gemma4ForConditionalGeneration(config), processor
