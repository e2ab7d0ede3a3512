"""Google's VLMs: PaliGemma (SigLIP + Gemma, a prefix of image tokens), Gemma 3 (SigLIP pooled to a few soft
tokens, sliding-window and global layers) and Gemma 4.

Tiny random models of the real architectures with the families' own processors and special tokens.
"""

from __future__ import annotations

from typing import Any, cast

from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedModel,
    SiglipImageProcessorPil,
)

from lit_tv.testing.tiny_text import TEXT, build_tokenizer, text_options

IMAGE = 32  # pixels per side
PATCH = 8
HEAD_DIM = TEXT["hidden_size"] // TEXT["num_attention_heads"]  # Gemma's default head size (256) is not the zoo's
SIGLIP = dict(
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
    tokenizer = build_tokenizer(
        GEMMA3_TOKENS, boi_token="<start_of_image>", eoi_token="<end_of_image>", image_token="<image_soft_token>"
    )
    ids = {name: cast(int, tokenizer.convert_tokens_to_ids(token)) for name, token in zip(
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
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_length=4)
    return Gemma3ForConditionalGeneration(config), processor


def build_paligemma() -> tuple[PreTrainedModel, Any]:
    """PaliGemma: every SigLIP patch a token (16 per image) before BOS and the prompt, which the processor ends
    with a newline; image and prompt attend both ways (a prefix LM), the answer causally."""
    tokenizer = build_tokenizer(image_token="<image>")
    image_processor = SiglipImageProcessorPil(size={"height": IMAGE, "width": IMAGE})
    image_processor.image_seq_length = (IMAGE // PATCH) ** 2
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
