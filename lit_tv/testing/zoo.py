"""Random models of real VLM architectures, saved and loaded like a user's hub model.

Tiny ones for the tests (and for trying the CLI without downloads:
`python -m lit_tv.testing.zoo llava /tmp/tiny-llava`), and random models of LLaVA-1.5-7B's layout for
benchmarks/speed.py: `llava-7b-random` at full size for GPU timings, narrower ones for 600-token prompts
on CPU. Each builder returns a model and its processor (or tokenizer), built offline: a byte-level BPE
trained here on a small corpus plus the architecture's own PIL image processor.
`save_zoo_model` writes both with `save_pretrained`, so they load through FrozenVLM's public path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    FuyuConfig,
    FuyuForCausalLM,
    FuyuImageProcessorPil,
    FuyuProcessor,
    Idefics2Config,
    Idefics2ForConditionalGeneration,
    Idefics2ImageProcessorPil,
    Idefics2Processor,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)
from transformers.utils import CHAT_TEMPLATE_FILE

from lit_tv.files import partial_path
from lit_tv.model.compat import build_processor_without_video, processor_options
from lit_tv.testing.chat_templates import CHAT_FORMATS
from lit_tv.testing.gemma_family import build_gemma3, build_gemma4, build_paligemma
from lit_tv.testing.glm_family import build_glm4v, build_glm4v_moe
from lit_tv.testing.idefics_family import build_smolvlm
from lit_tv.testing.internvl_family import build_internvl
from lit_tv.testing.llama_vision_family import build_llama4, build_mllama
from lit_tv.testing.llava_family import build_aya_vision, build_llava_next, build_llava_onevision, build_mistral3
from lit_tv.testing.molmo_family import build_molmo2
from lit_tv.testing.qwen_family import build_qwen2_5_vl, build_qwen3_vl, build_qwen3_vl_moe
from lit_tv.testing.tiny_text import TEXT, build_fuyu_tokenizer, build_tokenizer, text_options


def _vision() -> dict:
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)


def build_llava(
    image_size: int = 32, patch_size: int = 8, vision: dict | None = None, text: dict | None = None
) -> tuple[PreTrainedModel, Any]:
    tokenizer = build_tokenizer(image_token="<image>")
    vision_config = CLIPVisionConfig(
        image_size=image_size, patch_size=patch_size, projection_dim=32, **(vision or _vision())
    )
    text_config = LlamaConfig(**text_options(tokenizer, **(text or {})))
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=cast(int, tokenizer.convert_tokens_to_ids("<image>")),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    edge = {"height": image_size, "width": image_size}
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size=edge),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_FORMATS["llava"].jinja(),
    )
    return LlavaForConditionalGeneration(config), processor


def build_llava_1_5(
    hidden: int = 4096, layers: int = 32, vision_hidden: int = 1024, vision_layers: int = 24, context: int = 16384
) -> tuple[PreTrainedModel, Any]:
    """LLaVA-1.5-7B's layout, random weights: CLIP ViT-L/14 at 336 px (576 image tokens per image), Llama-2-7B.

    Narrower or shallower versions keep the head sizes (128 text, 64 vision) and the MLP's and the
    vocabulary's proportion to the width, so a prompt's costs divide up as in the real model: the CPU
    benchmark runs 600-token prompts on one. The real context is 4096 tokens, about 6 shots of one image
    each; `context` is larger so that the benchmark's 16-shot ICL prompt (about 9,900 tokens) runs.
    """
    scale = hidden / 4096
    return build_llava(
        image_size=336,
        patch_size=14,
        vision=dict(
            hidden_size=vision_hidden,
            intermediate_size=4 * vision_hidden,
            num_hidden_layers=vision_layers,
            num_attention_heads=vision_hidden // 64,
        ),
        text=dict(
            vocab_size=round(32064 * scale),
            hidden_size=hidden,
            intermediate_size=round(11008 * scale),
            num_hidden_layers=layers,
            num_attention_heads=hidden // 128,
            num_key_value_heads=hidden // 128,
            max_position_embeddings=context,
        ),
    )


def build_idefics2() -> tuple[PreTrainedModel, Any]:
    tokenizer = build_tokenizer(image_token="<image>", image_boundary_token="<fake_token_around_image>")
    config = Idefics2Config(
        vision_config=dict(image_size=32, patch_size=8, **_vision()),
        perceiver_config=dict(
            hidden_size=TEXT["hidden_size"],
            resampler_n_latents=4,
            resampler_depth=1,
            resampler_n_heads=2,
            resampler_head_dim=16,
            num_key_value_heads=1,
        ),
        text_config=dict(model_type="mistral", **text_options(tokenizer)),
        image_token_id=cast(int, tokenizer.convert_tokens_to_ids("<image>")),  # one token: one id
    )
    processor = Idefics2Processor(
        image_processor=Idefics2ImageProcessorPil(
            do_image_splitting=False, size={"shortest_edge": 32, "longest_edge": 32}
        ),
        tokenizer=tokenizer,
        image_seq_len=4,
        chat_template=CHAT_FORMATS["idefics2"].jinja(),
    )
    return Idefics2ForConditionalGeneration(config), processor


def build_idefics3() -> tuple[PreTrainedModel, Any]:
    tokenizer = build_tokenizer()
    config = Idefics3Config(
        vision_config=dict(image_size=32, patch_size=8, **_vision()),
        text_config=dict(model_type="llama", **text_options(tokenizer)),
        scale_factor=2,
        image_token_id=cast(int, tokenizer.convert_tokens_to_ids("<image>")),
    )
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(
            do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32}
        ),
        tokenizer=tokenizer,
        image_seq_len=4,
        chat_template=CHAT_FORMATS["idefics3"].jinja(),
    )
    return Idefics3ForConditionalGeneration(config), processor


def build_qwen2_vl() -> tuple[PreTrainedModel, Any]:
    chat = CHAT_FORMATS["qwen2_vl"]
    tokenizer = build_tokenizer(chat.tokens)
    ids: dict[str, Any] = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]
    }
    head_dim = TEXT["hidden_size"] // TEXT["num_attention_heads"]
    config = Qwen2VLConfig(
        vision_config=dict(
            depth=1,
            embed_dim=32,
            hidden_size=TEXT["hidden_size"],
            num_heads=2,
            patch_size=8,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        text_config=text_options(
            tokenizer,
            rope_parameters=dict(
                rope_type="default", rope_theta=10000.0, mrope_section=[head_dim // 4, head_dim // 8, head_dim // 8]
            ),
        ),
        **ids,
    )
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=32 * 32
    )
    processor = build_processor_without_video(Qwen2VLProcessor, tokenizer, image_processor, chat_template=chat.jinja())
    return Qwen2VLForConditionalGeneration(config), processor


def build_fuyu() -> tuple[PreTrainedModel, Any]:
    tokenizer = build_fuyu_tokenizer()
    text = text_options(tokenizer, model_type="persimmon", pad_token_id=0)
    del text["num_key_value_heads"]
    config = FuyuConfig(
        image_size=32,
        patch_size=8,
        text_config=text,
        image_token_id=cast(int, tokenizer.convert_tokens_to_ids("|SPEAKER|")),
    )
    processor = FuyuProcessor(
        image_processor=FuyuImageProcessorPil(size={"height": 32, "width": 32}, patch_size={"height": 8, "width": 8}),
        tokenizer=tokenizer,
    )
    return FuyuForCausalLM(config), processor


def build_llama() -> tuple[PreTrainedModel, Any]:
    tokenizer = build_tokenizer()
    return LlamaForCausalLM(LlamaConfig(**text_options(tokenizer))), tokenizer


ZOO: dict[str, Callable[[], tuple[PreTrainedModel, Any]]] = {
    "llava": build_llava,
    "idefics2": build_idefics2,
    "idefics3": build_idefics3,
    "qwen2_vl": build_qwen2_vl,
    "fuyu": build_fuyu,
    "llama": build_llama,
    "llava_next": build_llava_next,
    "llava_onevision": build_llava_onevision,
    "gemma3": build_gemma3,
    "aya_vision": build_aya_vision,
    "internvl": build_internvl,
    "smolvlm": build_smolvlm,
    "paligemma": build_paligemma,
    "qwen2_5_vl": build_qwen2_5_vl,
    "qwen3_vl": build_qwen3_vl,
    "qwen3_vl_moe": build_qwen3_vl_moe,
    "glm4v": build_glm4v,
    "glm4v_moe": build_glm4v_moe,
    "mllama": build_mllama,
    "gemma4": build_gemma4,
}
# Families whose image processor transformers ships for torchvision only, which lit_tv runs without: each
# comes with its tokenizer, its decoder checked on text prompts (tests/model/test_torchvision_families.py), and
# loading a saved one without torchvision is refused by name
TORCHVISION_FAMILIES: dict[str, Callable[[], tuple[PreTrainedModel, PreTrainedTokenizerFast]]] = {
    "llama4": build_llama4,
    "mistral3": build_mistral3,
    "molmo2": build_molmo2,
}
# Not in ZOO (the tests build and save every ZOO model): built in memory by benchmarks/speed.py. The 7B one
# needs a GPU's memory, in bf16; the small one (1/16 of its widths, 4 layers) runs its 600-token prompts on a
# CPU in minutes, the tiny one (1 layer) in seconds, for the tests.
BENCHMARK_MODELS: dict[str, Callable[[], tuple[PreTrainedModel, Any]]] = {
    "llava-7b-random": build_llava_1_5,
    "llava-1.5-small-random": partial(build_llava_1_5, hidden=256, layers=4, vision_hidden=64, vision_layers=2),
    "llava-1.5-tiny-random": partial(build_llava_1_5, hidden=128, layers=1, vision_hidden=64, vision_layers=1),
}


def save_zoo_model(name: str, folder: Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Build the named tiny model with a fixed seed and save model + processor to `folder`.

    Written under ``<folder>.partial`` and renamed when complete; a folder that already holds a model is
    replaced only with `overwrite`, and a non-empty folder that holds none (no ``config.json``) never."""
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / "config.json").is_file():
            raise FileExistsError(
                f"{folder} is not empty and holds no model (no config.json): give a new or empty folder"
            )
        if not overwrite:
            raise FileExistsError(f"{folder} already holds a model: give --overwrite to replace it, or another folder")
    torch.manual_seed(seed)
    model, processor = {**ZOO, **BENCHMARK_MODELS}[name]()
    unfinished = partial_path(folder)
    shutil.rmtree(unfinished, ignore_errors=True)  # an earlier interrupted save's
    model.save_pretrained(unfinished)
    if getattr(processor, "video_processor", True) is None:
        # Saved as a hub folder holds it; transformers cannot save a processor with an empty slot.
        processor.tokenizer.save_pretrained(unfinished)
        processor.image_processor.save_pretrained(unfinished)
        # the processor's own options, as a hub folder's processor_config.json holds them, and its chat template
        # in the file a hub folder holds it in (to_dict leaves it out)
        options = processor_options(type(processor), processor.to_dict())
        (unfinished / "processor_config.json").write_text(
            json.dumps({"processor_class": type(processor).__name__, **options})
        )
        if processor.chat_template is not None:
            (unfinished / CHAT_TEMPLATE_FILE).write_text(processor.chat_template)
    else:
        processor.save_pretrained(unfinished)
    if folder.is_dir():
        shutil.rmtree(folder)  # empty, or a model `overwrite` replaces
    os.replace(unfinished, folder)
    return folder


def main(argv: list[str] | None = None) -> None:
    """`python -m lit_tv.testing.zoo ARCH FOLDER [--overwrite]` (BENCHMARK_MODELS are speed.py's, not offered here)."""
    parser = argparse.ArgumentParser(prog="python -m lit_tv.testing.zoo", description="save a tiny random model")
    parser.add_argument("arch", choices=list(ZOO))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--overwrite", action="store_true", help="replace a model already saved in FOLDER")
    args = parser.parse_args(argv)
    try:
        print(save_zoo_model(args.arch, args.folder, overwrite=args.overwrite))
    except FileExistsError as error:
        parser.exit(1, f"python -m lit_tv.testing.zoo: error: {error}\n")


if __name__ == "__main__":
    main()
