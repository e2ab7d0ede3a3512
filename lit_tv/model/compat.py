"""Work-arounds for differences between transformers versions, and for processors that break without torchvision.

The KV cache is passed and returned as `cache` since transformers 5.24, as `past_key_values` before.
lit_tv does not depend on torchvision, so transformers falls back to its PIL image processors; video processors,
and the num2words package SmolVLM's processor wants for video prompts only, are left out.
Processors broken on that path (seen on transformers 5.23-5.25) get a shim each, applied only to the processor
instance that needs it.
"""

from __future__ import annotations

import inspect
import types
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch import nn
from transformers import AutoImageProcessor, AutoTokenizer, ProcessorMixin
from transformers.models.auto.processing_auto import processor_class_from_name
from transformers.models.smolvlm import processing_smolvlm as smolvlm_processing


def cache_argument(model: nn.Module) -> str:
    """The name under which `model`'s forward takes the KV cache, and its output returns it."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def decoder_cache(kwargs: dict):
    """The KV cache a decoder call got, under either name."""
    cache = kwargs.get("cache")
    return cache if cache is not None else kwargs.get("past_key_values")


def keep_rollback(cache) -> None:
    """Let a KV cache with sliding-window or chunked layers be cropped back after a step past the window, as scoring
    many steps over one cached prefix needs (transformers keeps such layers' past only when asked to)."""
    activate = getattr(cache, "activate_past_recording", None)  # not in every transformers 5 release
    if activate is not None:
        activate()


def build_processor_without_video(
    processor_class: type[ProcessorMixin], tokenizer, image_processor, **options: Any
) -> ProcessorMixin:
    """An image+text processor whose video component needs torchvision (e.g. Qwen2-VL).

    transformers refuses to build these without torchvision; images and text need only the
    tokenizer and the image processor, so the video slot is left empty. `options` are the processor's own
    (e.g. LLaVA-OneVision's ``num_image_tokens``).
    """
    with (
        mock.patch.object(ProcessorMixin, "check_argument_for_proper_class", lambda self, name, arg: type(arg)),
        mock.patch.object(smolvlm_processing, "num2words", smolvlm_processing.num2words or _video_only_num2words),
    ):
        # an audio part (Gemma 4's feature extractor) is left out as the video part is
        takes_audio = "feature_extractor" in inspect.signature(processor_class).parameters
        audio = {"feature_extractor": None} if takes_audio else {}
        return processor_class(
            image_processor=image_processor, tokenizer=tokenizer, video_processor=None, **audio, **options
        )


def _video_only_num2words(number: int) -> str:
    """Stands in for the num2words package, which SmolVLM's processor demands but uses only in video prompts."""
    raise ImportError(f"writing {number} video frames in words needs the num2words package (pip install num2words)")


def processor_options(processor_class: type[ProcessorMixin], saved: dict) -> dict:
    """The entries of a saved processor_config.json that `processor_class` takes as its own options."""
    taken = inspect.signature(processor_class.__init__).parameters
    components = {"image_processor", "tokenizer", "video_processor", "feature_extractor"}
    return {key: value for key, value in saved.items() if key in taken and key not in components}


def load_processor_without_video(
    path: str | Path, processor_class_name: str, image_kwargs: dict, saved: dict, **kwargs
) -> ProcessorMixin:
    """`AutoProcessor.from_pretrained` for those processors, from the saved tokenizer and image processor, and
    the processor's own options in `saved` (its processor_config.json, and its chat template).

    `image_kwargs` (the user's processor options, e.g. ``min_pixels``) go to the image processor.
    """
    processor_class = processor_class_from_name(processor_class_name)
    if processor_class is None:
        raise ValueError(f"unknown processor class {processor_class_name!r} in {path}")
    return build_processor_without_video(
        processor_class,
        AutoTokenizer.from_pretrained(path, **kwargs),
        AutoImageProcessor.from_pretrained(path, **image_kwargs, **kwargs),
        **processor_options(processor_class, saved),
    )


def fix_fuyu_patchify(processor: ProcessorMixin) -> None:
    """FuyuImageProcessorPil.patchify_image uses numpy calls on the torch tensor FuyuProcessor passes."""
    image_processor = processor.image_processor
    numpy_patchify = type(image_processor).patchify_image

    def patchify_image(self, image: torch.Tensor, patch_size) -> torch.Tensor:
        patches = numpy_patchify(self, image.numpy() if isinstance(image, torch.Tensor) else image, patch_size)
        return torch.as_tensor(patches)

    image_processor.patchify_image = types.MethodType(patchify_image, image_processor)


def fix_smolvlm_chat(processor: ProcessorMixin) -> None:
    """SmolVLMProcessor.apply_chat_template reads its video processor's frame defaults for every conversation;
    without a video processor the common method, which renders image and text turns the same, is used instead."""
    if getattr(processor, "video_processor", None) is None:
        processor.apply_chat_template = types.MethodType(  # type: ignore[method-assign]  # this instance only
            ProcessorMixin.apply_chat_template, processor
        )
