"""The zoo's text side: a byte-level BPE trained offline on a few lines, with every family's special tokens.

Real tokenizers cannot be downloaded here; one trained in a second on a small corpus gives each tiny model a
vocabulary, special tokens that processors look up by name, and left padding as lit_tv's batches expect.
"""

from __future__ import annotations

import re
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from lit_tv.model.fuyu import MANTIS_MARKERS

SPECIAL_TOKENS = [
    "<pad>",
    "<s>",
    "</s>",
    "<unk>",
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
    "<end_of_utterance>",
    "<|vision_start|>",
    "<|image_pad|>",
    "<|vision_end|>",
    "<|video_pad|>",
    "|SPEAKER|",
    "|NEWLINE|",
    "<0x04>",
]
CORPUS = [
    "Q: What colour is the object? A: red green blue yellow purple orange",
    "Q: What shape is it? A: circle square triangle star heart",
    "Question: Is it top-left, top-right, bottom-left or bottom-right? Answer: unanswerable",
    "country capital currency animal young latin food colour flavour 0123456789",
    "The quick brown fox jumps over the lazy dog. A: B: Options: yes no",
]
TEXT = dict(
    vocab_size=400,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=1024,
)


def fast_tokenizer(tokenizer: Tokenizer, **options: Any) -> PreTrainedTokenizerFast:
    """The transformers tokenizer around a trained one: the zoo's special tokens, padding on the left."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
        **options,
    )


def build_tokenizer(extra_special: tuple[str, ...] = (), **named_tokens: str) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on a few lines, with every architecture's special tokens.

    `extra_special`: one family's own special tokens, after the shared ones (so the shared tokens keep their
    ids in every model). `named_tokens` become tokenizer attributes (e.g. ``image_token``) that processors look up.
    """
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TEXT["vocab_size"],
        special_tokens=[*SPECIAL_TOKENS, *extra_special],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    return fast_tokenizer(tokenizer, extra_special_tokens=named_tokens)


def build_fuyu_tokenizer() -> PreTrainedTokenizerFast:
    """Sentencepiece-style BPE like Fuyu's own: '▁' prepended, image tokens ordinary vocabulary.

    FuyuProcessor drops the first token of the image part, which its real tokenizer emits as a
    lone '▁'; this tokenizer reproduces that. It also has Mantis-Fuyu's image markers
    (``|IMAGE|``, ``|ENDOFIMAGE|``), so prompts get Mantis' layout (`lit_tv.model.fuyu`).
    """
    image_tokens = ["|SPEAKER|", "|NEWLINE|"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("|".join(re.escape(token) for token in image_tokens)), "isolated"),
            pre_tokenizers.Split("▁", "merged_with_next"),
        ]
    )
    tokenizer.decoder = decoders.Replace("▁", " ")
    corpus = CORPUS * 4 + ["".join(image_tokens)] * 8
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<0x04>", *MANTIS_MARKERS]
    trainer = trainers.BpeTrainer(
        vocab_size=TEXT["vocab_size"], special_tokens=specials, initial_alphabet=sorted(set("".join(corpus)) | {"▁"})
    )
    tokenizer.train_from_iterator(corpus, trainer)
    return fast_tokenizer(tokenizer)


def text_options(tokenizer: PreTrainedTokenizerFast, **overrides) -> dict:
    """A tiny text config's options (TEXT) with the tokenizer's vocabulary size and special-token ids."""
    tokens = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return {**TEXT, **tokens, **overrides}
