"""What lit_tv must know about a model family beyond transformers' common processor API, one entry per family.

Keyed by processor class (a subclass gets its base's entry); a family not listed needs nothing special.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transformers import BatchFeature, ProcessorMixin

from lit_tv.model.compat import fix_fuyu_patchify, fix_smolvlm_chat
from lit_tv.model.fuyu import IMAGE_PLACEHOLDER, build_fuyu_inputs


@dataclass(frozen=True)
class Family:
    """One model family's quirks.

    image_token: the placeholder lit_tv writes per image; None: the processor's own `image_token`.
    image_wrapping: markers around each image token in plain-text (non-chat) prompts.
    build_inputs: builds a batch from texts and images itself, where the processor cannot.
    fix_processor: a shim applied to the processor when a `FrozenVLM` wraps it.
    dropped_inputs: what the processor returns that the model must not get (PaliGemma's training labels).
    """

    image_token: str | None = None
    image_wrapping: tuple[str, str] = ("", "")
    # called with the family's own processor class
    build_inputs: Callable[[Any, list[str], list[list]], BatchFeature] | None = None
    fix_processor: Callable[[ProcessorMixin], None] | None = None
    dropped_inputs: tuple[str, ...] = ()


_QWEN_VISION = ("<|vision_start|>", "<|vision_end|>")
FAMILIES = {
    # HF's processor puts one image before all the text and appends a token: see lit_tv.model.fuyu
    "FuyuProcessor": Family(
        image_token=IMAGE_PLACEHOLDER, build_inputs=build_fuyu_inputs, fix_processor=fix_fuyu_patchify
    ),
    "Qwen2VLProcessor": Family(image_wrapping=_QWEN_VISION),
    "Qwen2_5_VLProcessor": Family(image_wrapping=_QWEN_VISION),
    "Qwen3VLProcessor": Family(image_wrapping=_QWEN_VISION),
    "Glm4vProcessor": Family(image_wrapping=("<|begin_of_image|>", "<|end_of_image|>")),
    # its chat method needs the video processor, left out without torchvision
    "SmolVLMProcessor": Family(fix_processor=fix_smolvlm_chat),
    # returns labels with every batch (kept for old fine-tuning code): a forward given them computes a loss
    "PaliGemmaProcessor": Family(dropped_inputs=("labels",)),
}
PLAIN = Family()


def family_of(processor: object) -> Family:
    """The entry of the processor's class or its nearest listed base; `PLAIN` for the rest (and tokenizers)."""
    return next((FAMILIES[base.__name__] for base in type(processor).__mro__ if base.__name__ in FAMILIES), PLAIN)
