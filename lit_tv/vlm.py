"""FrozenVLM: any Hugging Face VLM (or text-only causal LM), frozen, with its layout and processor."""

from __future__ import annotations

import importlib.util
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    BatchFeature,
    BitsAndBytesConfig,
    FuyuProcessor,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
from transformers.utils import cached_file

from lit_tv.compat import fix_fuyu_patchify, load_processor_without_video
from lit_tv.episodes import Episode, ImageLike
from lit_tv.fuyu import IMAGE_PLACEHOLDER, build_fuyu_inputs
from lit_tv.layout import Layout, discover_layout
from lit_tv.prompts import PromptTemplate

# Processors whose image token must sit between vision start/end markers in plain-text prompts.
WRAPPED_IMAGE_TOKENS = {
    "Qwen2VLProcessor": ("<|vision_start|>", "<|vision_end|>"),
    "Qwen2_5_VLProcessor": ("<|vision_start|>", "<|vision_end|>"),
}


class ModelLoadError(OSError):
    """A model id or path that cannot be loaded, with the reason and what to check."""


def load_image(image: ImageLike, width: int | None = None) -> Image.Image:
    """Open lazily (paths stay paths until a prompt needs them) and convert to RGB.

    With `width`, resize to that width keeping the aspect ratio, as the cross-modal reference does
    (width 224) before the model's processor sees the image.
    """
    if isinstance(image, Image.Image):
        rgb = image.convert("RGB")
    else:
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        try:
            with Image.open(path) as opened:
                rgb = opened.convert("RGB")
        except OSError as error:
            raise ValueError(f"cannot read image {path}: {error}") from error
    if width is None:
        return rgb
    return rgb.resize((width, max(1, int(width / rgb.width * rgb.height))))


def check_image_width(width: int | None) -> None:
    if width is not None and (not isinstance(width, int) or isinstance(width, bool) or width < 1):
        raise ValueError(f"model.image_width must be a positive number of pixels or null, got {width!r}")


def quantization_config(quantization: str | None, dtype: str, device: str) -> BitsAndBytesConfig | None:
    """transformers' config for `quantization`; refused where it cannot run, before any weights load.

    ``nf4``: 4-bit NormalFloat weights with double quantisation (bitsandbytes, CUDA only), computing in `dtype`.
    """
    if quantization is None:
        return None
    if quantization != "nf4":
        raise ValueError(f"model.quantization must be 'nf4' or null, got {quantization!r}")
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        raise ValueError(f"model.quantization: 'nf4' runs on CUDA only (bitsandbytes 4-bit), but the model would load "
                         f"on {device!r} (CUDA available: {torch.cuda.is_available()}); set model.quantization: null")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError("model.quantization: 'nf4' needs the bitsandbytes package (pip install bitsandbytes), "
                          "which is not installed")
    if dtype == "auto":
        raise ValueError("model.quantization: 'nf4' computes in model.dtype: set it to bfloat16, float16 or float32")
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=getattr(torch, dtype))


# Models shipped inside the package, addressed like hub ids.
BUILTIN_MODELS = {"lit_tv/shapes-toy": Path(__file__).parent / "shapes" / "checkpoint",
                  "lit_tv/shapes-toy-many-shot": Path(__file__).parent / "shapes" / "checkpoint_many_shot"}


def resolve_model_path(name_or_path: str | Path) -> str:
    """A built-in name, an existing local folder, or a hub id; a missing local path is refused here."""
    name = str(name_or_path)
    if name in BUILTIN_MODELS:
        return str(BUILTIN_MODELS[name])
    local = Path(name).expanduser()
    if local.exists():
        return str(local)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise ModelLoadError(f"model path does not exist: {name}")
    return name


def _load_processor(name_or_path: str, config: PretrainedConfig, is_vlm: bool, processor_kwargs: dict, **kwargs):
    if not is_vlm:
        return AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    try:
        processor = AutoProcessor.from_pretrained(name_or_path, **processor_kwargs, **kwargs)
    except ImportError as error:
        if "torchvision" not in str(error).lower():
            raise
        class_name = getattr(config, "processor_class", None) or _processor_class_name(name_or_path)
        processor = load_processor_without_video(name_or_path, class_name, processor_kwargs, **kwargs)
    if isinstance(processor, FuyuProcessor):
        fix_fuyu_patchify(processor)
    return processor


def _processor_class_name(name_or_path: str) -> str:
    """Read the processor class a saved folder declares (processor_config.json or tokenizer config)."""
    for file_name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        resolved = cached_file(name_or_path, file_name, _raise_exceptions_for_missing_entries=False)
        if resolved and (name := json.loads(Path(resolved).read_text()).get("processor_class")):
            return name
    raise ModelLoadError(f"{name_or_path}: no processor_class declared in its processor or tokenizer config")


@dataclass(frozen=True)
class VLMOptions:
    """Which frozen model to load and how: `FrozenVLM.from_pretrained`'s options as one config block.

    name: a hub id, a local folder, or ``lit_tv/shapes-toy``. Remote code runs only with
    `trust_remote_code`. `processor_kwargs` reach `AutoProcessor.from_pretrained`. `image_width`
    resizes every image to that width (aspect kept) before the processor; `quantization: nf4` loads
    the weights in 4-bit NF4 (bitsandbytes, CUDA).
    """

    name: str = "lit_tv/shapes-toy"
    dtype: str = "float32"
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    image_placeholder: str | None = None
    processor_kwargs: dict[str, Any] = field(default_factory=dict)
    image_width: int | None = None
    quantization: Literal["nf4"] | None = None

    def __post_init__(self) -> None:
        check_image_width(self.image_width)  # a config mistake stops the run before data or weights load

    def load(self, device: str) -> FrozenVLM:
        return FrozenVLM.from_pretrained(self.name, dtype=self.dtype, device=device,
                                         attn_implementation=self.attn_implementation,
                                         trust_remote_code=self.trust_remote_code,
                                         image_placeholder=self.image_placeholder,
                                         processor_kwargs=self.processor_kwargs,
                                         image_width=self.image_width, quantization=self.quantization)


SHAPES_TOY = VLMOptions()  # the default model of every method: the shipped toy VLM


class FrozenVLM(nn.Module):
    """A frozen model plus what lit_tv needs to read and patch it.

    Parameters never require grad and the model stays in eval mode, so no optimizer or strategy
    can train or gradient-sync them.
    """

    def __init__(self, model: nn.Module, processor, name: str = "", image_placeholder: str | None = None,
                 image_width: int | None = None) -> None:
        super().__init__()
        check_image_width(image_width)
        self.image_width = image_width
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.name = name or getattr(model.config, "_name_or_path", type(model).__name__)
        self.layout: Layout = discover_layout(model)
        # only the last position's logits: [batch, tokens, vocab] of a long image prompt is gigabytes
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters \
            else {}
        # Qwen2-VL-style models keep the last prompt's M-RoPE offsets between calls
        self._position_caches = [module for module in model.modules() if hasattr(module, "rope_deltas")]
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.image_placeholder = self._default_image_placeholder() if image_placeholder is None else image_placeholder

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        dtype: str = "float32",
        device: str = "cpu",
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        image_placeholder: str | None = None,
        processor_kwargs: dict | None = None,
        image_width: int | None = None,
        quantization: str | None = None,
    ) -> FrozenVLM:
        """Load by hub id or local folder; VLMs with their processor, text-only LMs with their tokenizer.

        `processor_kwargs` go to `AutoProcessor.from_pretrained` (e.g. ``{"do_image_splitting": False}``).
        A quantized model is placed on `device` while it loads (bitsandbytes weights cannot be moved later).
        """
        check_image_width(image_width)
        quantized = quantization_config(quantization, dtype, device)
        name = resolve_model_path(name_or_path)
        common = {"trust_remote_code": trust_remote_code}
        try:
            config = AutoConfig.from_pretrained(name, **common)
        except (OSError, ValueError) as error:
            raise ModelLoadError(
                f"cannot load model {name!r}: not a local folder with a config.json and not available from the "
                f"Hugging Face hub or its local cache ({error})") from error
        is_vlm = type(config) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
        model_class = AutoModelForImageTextToText if is_vlm else AutoModelForCausalLM
        placement = {"quantization_config": quantized, "device_map": device} if quantized else {}
        model = model_class.from_pretrained(name, dtype=getattr(torch, dtype) if dtype != "auto" else "auto",
                                            attn_implementation=attn_implementation, **placement, **common)
        processor = _load_processor(name, config, is_vlm, processor_kwargs or {}, **common)
        return cls(model if quantized else model.to(device), processor, name=name,
                   image_placeholder=image_placeholder, image_width=image_width)

    # ---- what the model is -------------------------------------------------------------------

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def is_multimodal(self) -> bool:
        return self.processor is not self.tokenizer

    @property
    def device(self) -> torch.device:
        return self.layout.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in: floating inputs are cast to it."""
        return self.layout.lm_head.weight.dtype

    @property
    def context_length(self) -> int | None:
        """The most prompt tokens the text model takes (``max_position_embeddings``), if its config says."""
        return getattr(self.model.config.get_text_config(), "max_position_embeddings", None)

    def _check_context(self, batch: BatchFeature) -> None:
        """A prompt past the context would run on positions the model never saw: refuse it instead."""
        context, length = self.context_length, batch["input_ids"].shape[-1]
        if context is not None and length > context:
            raise ValueError(f"a prompt of {length} tokens is longer than the context of {self.name} "
                             f"({context} tokens, max_position_embeddings): use fewer or smaller shots")

    @property
    def image_token(self) -> str:
        """The token the processor expands per image (Fuyu: the placeholder lit_tv replaces with patches)."""
        return IMAGE_PLACEHOLDER if self._is_fuyu else getattr(self.processor, "image_token", "")

    @property
    def _is_fuyu(self) -> bool:
        return isinstance(self.processor, FuyuProcessor)

    def _default_image_placeholder(self) -> str:
        start, end = WRAPPED_IMAGE_TOKENS.get(type(self.processor).__name__, ("", ""))
        return start + self.image_token + end

    # ---- prompts -------------------------------------------------------------------------------

    def render(self, episode: Episode, template: PromptTemplate) -> str:
        """Prompt text of one episode, with the model's own image placeholders or chat template."""
        if not template.chat:
            return template.render(episode, self.image_placeholder)
        messages = []
        for index, example in enumerate((*episode.shots, episode.query)):
            text = template.render_query(example, "")
            if index == 0:
                text = template.instruction + text
            content = [{"type": "image"} for _ in example.images] + [{"type": "text", "text": text}]
            messages.append({"role": "user", "content": content if self.is_multimodal else text})
            if example is not episode.query:
                messages.append({"role": "assistant", "content": example.answer})
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _check_images(self, index: int, text: str, images: list) -> None:
        if images and not self.is_multimodal:
            raise ValueError(f"episode {index} has {len(images)} images but {self.name} is a text-only model")
        found = text.count(self.image_token) if self.image_token else 0
        if found != len(images):
            raise ValueError(
                f"episode {index}: prompt has {found} image placeholders ({self.image_token!r}) "
                f"but {len(images)} images were given")

    def build_inputs(self, episodes: Sequence[Episode], template: PromptTemplate) -> BatchFeature:
        """Left-padded batch on the model's device, floating inputs in its dtype.

        Position -1 is every row's last prompt token (for Fuyu too: see `lit_tv.fuyu`).
        """
        texts, images = [], []
        for index, episode in enumerate(episodes):
            text, row_images = self.render(episode, template), episode.images()
            self._check_images(index, text, row_images)
            texts.append(text)
            images.append([load_image(image, self.image_width) for image in row_images])
        if self._is_fuyu:
            batch = build_fuyu_inputs(self.processor, texts, images, self.image_token)
        elif not any(images):
            batch = self.tokenizer(texts, padding=True, return_tensors="pt")  # with BOS, as the processor adds
        else:
            batch = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        self._check_context(batch)
        return BatchFeature(dict(batch)).to(self.device, dtype=self.dtype)

    def answer_token_ids(self, episodes: Sequence[Episode], template: PromptTemplate) -> torch.Tensor:
        """First token of each query's target answer as it continues the prompt → `[batch]`."""
        ids = []
        for episode in episodes:
            prompt = self.render(episode, template)
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
            answered = prompt + template.render_answer(episode.query)
            full_ids = self.tokenizer(answered, add_special_tokens=False).input_ids
            if full_ids[: len(prompt_ids)] == prompt_ids and len(full_ids) > len(prompt_ids):
                ids.append(full_ids[len(prompt_ids)])
            else:
                ids.append(self.tokenizer(episode.query.answer, add_special_tokens=False).input_ids[0])
        return torch.tensor(ids, device=self.device)

    # ---- running -------------------------------------------------------------------------------

    @torch.inference_mode()
    def last_logits(self, inputs: BatchFeature | dict) -> torch.Tensor:
        """Next-token logits at the last prompt position → `[batch, vocab]` (for first-token scoring)."""
        return self.model(**inputs, **self._last_only).logits[:, -1].float()

    @torch.inference_mode()
    def branch_last_token(self, inputs: BatchFeature, rows: int) -> dict:
        """Prefill all but the last token of one prompt once; inputs for its last token in `rows` copies.

        The returned dict (last token ids + a KV cache repeated to `rows`) goes to `last_logits`.
        Head patches touch only the last position, so the shared prefix is the same in every row:
        this is the REINFORCE fast path. Positions continue from the cache (no attention mask is
        needed: a single prompt has no padding).
        """
        ids = inputs["input_ids"]
        if ids.shape[0] != 1 or not inputs["attention_mask"].all():
            raise ValueError(f"branch_last_token takes one unpadded prompt, got a batch of shape {tuple(ids.shape)}")
        aligned = [key for key, value in inputs.items() if torch.is_tensor(value) and value.shape[:2] == ids.shape]
        prefix = {key: value[:, :-1] if key in aligned else value for key, value in inputs.items()}
        for module in self._position_caches:  # M-RoPE offsets of an earlier prompt must not leak into this one
            module.rope_deltas = None
        cache = self.model(**prefix, use_cache=True).past_key_values
        cache.batch_repeat_interleave(rows)
        step = {key: inputs[key][:, -1:].repeat(rows, 1) for key in aligned if key != "attention_mask"}
        return {**step, "past_key_values": cache, "use_cache": True}

    @torch.inference_mode()
    def generate(self, inputs: BatchFeature, max_new_tokens: int = 10) -> list[str]:
        """Greedy answers, decoded without the prompt and special tokens."""
        output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def logit_lens(self, hidden: torch.Tensor) -> torch.Tensor:
        """Decode residual-stream vectors with the final norm and lm_head → logits."""
        layout = self.layout
        return layout.lm_head(layout.final_norm(hidden.to(layout.lm_head.weight.dtype))).float()
