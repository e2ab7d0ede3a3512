"""The toy VLM: a tiny, real ``LlavaForConditionalGeneration`` with its own word-level processor.

A real Hugging Face architecture, so everything the framework does to large VLMs (loading with
``AutoModelForImageTextToText``, hooks on heads and the residual stream) runs on it unchanged, on
a CPU, in seconds.
"""

from __future__ import annotations

from typing import cast

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from tokenizers.processors import TemplateProcessing
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from lit_tv.prompts import PromptTemplate
from lit_tv.shapes.world import COLOURS, IMAGE_SIZE, POSITIONS, SHAPES

# Every word is one token, so the first answer token decides the answer. No word names a task.
SHAPES_TEMPLATE = PromptTemplate(query="{images}{text} =", answer=" {answer}\n")
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN)
WORDS: tuple[str, ...] = ("=", *COLOURS, *SHAPES, *POSITIONS)
PATCH_SIZE = 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # CLS is dropped ("default" feature selection)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer that prepends BOS; ``<image>`` is special so that the 16 copies the
    processor writes back to back still split into 16 tokens."""
    vocab = {word: i for i, word in enumerate((*SPECIAL_TOKENS, *WORDS))}
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = WhitespaceSplit()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    core.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side="left",
    )


def build_processor() -> LlavaProcessor:
    """CLIP-style image preprocessing at 32x32 and an ``<image>`` expansion matching the model."""
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=build_tokenizer(),
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE_TOKEN,
    )


def image_prompt_tokens(shots: int) -> int:
    """Tokens of a prompt of ``shots`` answered image examples and an image query: BOS, 16 image
    tokens and ``=`` per example, one answer word per shot."""
    return 1 + (shots + 1) * (IMAGE_TOKENS + 1) + shots


def max_image_shots(context: int) -> int:
    """The most image shots whose prompt (and the query's answer, as in training) fits ``context``."""
    shots = 0
    while image_prompt_tokens(shots + 1) + 1 <= context:
        shots += 1
    return shots


def build_model(tokenizer: PreTrainedTokenizerFast, context: int = 1024) -> LlavaForConditionalGeneration:
    """About 1.4M parameters: 2-layer CLIP tower (patch 8), 4-layer Llama (hidden 128, 8 heads).

    ``context`` is the text model's ``max_position_embeddings``, which lit_tv enforces on prompts.
    Weights come from torch's global RNG: seed it first for a reproducible initialisation.
    """
    vision = CLIPVisionConfig(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=context,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=cast(int, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)),  # one token: one id
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=IMAGE_TOKENS,
    )
    return LlavaForConditionalGeneration(config)
