"""FrozenVLM: any Hugging Face VLM (or text-only causal LM), frozen, with its layout and processor."""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
from transformers.utils import cached_file

from lit_tv.compat import fix_fuyu_patchify, load_processor_without_video
from lit_tv.episodes import Episode, ImageLike
from lit_tv.fuyu import IMAGE_PLACEHOLDER, build_fuyu_inputs
from lit_tv.layout import Layout, discover_layout
from lit_tv.prompts import PromptTemplate, word_start_token_id

# Processors whose image token must sit between vision start/end markers in plain-text prompts.
WRAPPED_IMAGE_TOKENS = {
    "Qwen2VLProcessor": ("<|vision_start|>", "<|vision_end|>"),
    "Qwen2_5_VLProcessor": ("<|vision_start|>", "<|vision_end|>"),
}


LOGGER = logging.getLogger(__name__)
# attention implementations that apply a user-supplied 4-D mask (eager adds it; sdpa and flex take it as is)
MASKED_ATTENTION = ("eager", "sdpa", "flex_attention")


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


DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


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


DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
DeviceMap = str | dict[str, int | str]


def dispatch_options(device_map: DeviceMap | None, max_memory: dict[int | str, int | str] | None,
                     offload_folder: str | None) -> dict:
    """`from_pretrained` arguments that spread the frozen model over devices (accelerate's dispatch).

    Refused before any weights load: memory limits or an offload folder without a device map, an
    unknown strategy, disk offload without a folder, or accelerate missing.
    """
    if device_map is None:
        if max_memory is not None or offload_folder is not None:
            raise ValueError("model.max_memory / model.offload_folder take effect only with model.device_map "
                             f"(one of {DEVICE_MAP_STRATEGIES} or {{module name: device}})")
        return {}
    if isinstance(device_map, str) and device_map not in DEVICE_MAP_STRATEGIES:
        raise ValueError(f"model.device_map must be one of {DEVICE_MAP_STRATEGIES} or a mapping of module names to "
                         f"devices (0, 'cuda:1', 'cpu', 'disk'), got {device_map!r}")
    if isinstance(device_map, dict) and "disk" in device_map.values() and offload_folder is None:
        raise ValueError("model.device_map puts modules on 'disk': set model.offload_folder to a folder for them")
    if importlib.util.find_spec("accelerate") is None:
        raise ImportError("model.device_map needs the accelerate package (pip install accelerate), "
                          "which is not installed")
    return {"device_map": device_map, "max_memory": max_memory, "offload_folder": offload_folder}


def decoder_cache(kwargs: dict):
    """The KV cache a decoder call got: `cache` since transformers 5.24, `past_key_values` before."""
    cache = kwargs.get("cache")
    return cache if cache is not None else kwargs.get("past_key_values")


def dispatched_device(model: nn.Module) -> torch.device | None:
    """Where a dispatched model takes its inputs: its first accelerator, else the CPU; None if not dispatched.

    Offloaded weights sit on the meta device, so a parameter's device says nothing; accelerate's hooks
    move every module's inputs to where it runs and the outputs back to the inputs' device.
    """
    placement = getattr(model, "hf_device_map", None)
    if not placement or len(set(placement.values())) == 1 and next(iter(placement.values())) != "disk":
        return None
    accelerators = [device for device in placement.values() if device not in ("cpu", "disk")]
    return torch.device(accelerators[0]) if accelerators else torch.device("cpu")


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
    the weights in 4-bit NF4 (bitsandbytes, CUDA). `device_map` (``auto`` or module name -> device),
    `max_memory` (device -> size, e.g. ``{0: 20GiB, cpu: 60GiB}``) and `offload_folder` spread a model
    larger than one device over GPUs, CPU and disk (accelerate); the trainer's device is then ignored.
    """

    name: str = "lit_tv/shapes-toy"
    dtype: str = "float32"
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    image_placeholder: str | None = None
    processor_kwargs: dict[str, Any] = field(default_factory=dict)
    image_width: int | None = None
    quantization: Literal["nf4"] | None = None
    device_map: DeviceMap | None = None
    max_memory: dict[int | str, int | str] | None = None
    offload_folder: str | None = None

    def __post_init__(self) -> None:
        check_dtype(self.dtype)  # a config mistake stops the run before data or weights load
        check_image_width(self.image_width)
        dispatch_options(self.device_map, self.max_memory, self.offload_folder)

    def load(self, device: str) -> FrozenVLM:
        return FrozenVLM.from_pretrained(self.name, dtype=self.dtype, device=device,
                                         attn_implementation=self.attn_implementation,
                                         trust_remote_code=self.trust_remote_code,
                                         image_placeholder=self.image_placeholder,
                                         processor_kwargs=self.processor_kwargs,
                                         image_width=self.image_width, quantization=self.quantization,
                                         device_map=self.device_map, max_memory=self.max_memory,
                                         offload_folder=self.offload_folder)


SHAPES_TOY = VLMOptions()  # the default model of every method: the shipped toy VLM


@dataclass
class Branch:
    """One prompt's prefix in a KV cache, and the inputs that score its last token in `rows` ways.

    along ``positions``: the rows are tokens of the one cached sequence (batch 1); ``batch``: the
    cache was copied to `rows` sequences. Head patches must know which (`replace_heads(rows_along=...)`).
    """

    inputs: dict
    rows: int
    along: Literal["positions", "batch"]
    mask: torch.Tensor | None = None  # positions: each row sees the prefix and itself


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
        self._dispatched_to = dispatched_device(model)
        # only the last position's logits: [batch, tokens, vocab] of a long image prompt is gigabytes
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters \
            else {}
        # Qwen2-VL-style models keep the last prompt's M-RoPE offsets between calls
        self._position_caches = [module for module in model.modules() if hasattr(module, "rope_deltas")]
        # the KV cache's argument and output field: `cache` since transformers 5.24, `past_key_values` before
        self.cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        # whether rows may share one prefix through a 4-D mask: checked on first use (can_share_prefix), or set
        self.shares_prefix: bool | None = None
        # beyond its trained positions a model still answers, just not meaningfully: such prompts are refused
        self.context_length: int | None = getattr(model.config.get_text_config(), "max_position_embeddings", None)
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
        device_map: DeviceMap | None = None,
        max_memory: dict[int | str, int | str] | None = None,
        offload_folder: str | None = None,
    ) -> FrozenVLM:
        """Load by hub id or local folder; VLMs with their processor, text-only LMs with their tokenizer.

        `processor_kwargs` go to `AutoProcessor.from_pretrained` (e.g. ``{"do_image_splitting": False}``).
        A quantized model is placed on `device` while it loads (bitsandbytes weights cannot be moved later);
        with `device_map` the model is dispatched while it loads and never moved afterwards.
        """
        check_dtype(dtype)
        check_image_width(image_width)
        dispatch = dispatch_options(device_map, max_memory, offload_folder)
        quantized = quantization_config(quantization, dtype, device)
        name = resolve_model_path(name_or_path)
        common = {"trust_remote_code": trust_remote_code}
        try:
            config = AutoConfig.from_pretrained(name, **common)
        except (OSError, ValueError) as error:
            where = (f"the local folder {name} has no usable config.json" if Path(name).is_dir() else
                     f"{name!r} is not a local folder and not available from the Hugging Face hub or its local cache")
            raise ModelLoadError(f"model.name: cannot load model: {where} ({error})") from error
        is_vlm = type(config) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
        if not is_vlm and type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
            raise ModelLoadError(
                f"model.name: {name} is a {type(config).__name__} ({config.model_type!r}), neither an "
                "image-text-to-text model nor a causal LM: lit_tv patches decoder-only models")
        model_class = AutoModelForImageTextToText if is_vlm else AutoModelForCausalLM
        placement = {"quantization_config": quantized, "device_map": device} if quantized else {}
        placement |= dispatch
        model = model_class.from_pretrained(name, dtype=getattr(torch, dtype) if dtype != "auto" else "auto",
                                            attn_implementation=attn_implementation, **placement, **common)
        processor = _load_processor(name, config, is_vlm, processor_kwargs or {}, **common)
        return cls(model if placement else model.to(device), processor, name=name,
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
        """Where inputs go: lm_head's device, or a dispatched model's first accelerator (its weights may be on meta)."""
        return self._dispatched_to or self.layout.lm_head.weight.device

    @property
    def is_dispatched(self) -> bool:
        """Spread over devices (or offloaded) by accelerate: its hooks place every module; never move it."""
        return self._dispatched_to is not None

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in: floating inputs are cast to it."""
        return self.layout.lm_head.weight.dtype

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
        self._check_context(batch, episodes)
        return BatchFeature(dict(batch)).to(self.device, dtype=self.dtype)

    def _check_context(self, batch: BatchFeature | dict, episodes: Sequence[Episode]) -> None:
        if self.context_length is None:
            return
        ids = batch["input_ids"]
        lengths = batch["attention_mask"].sum(1) if "attention_mask" in batch else [ids.shape[1]] * len(ids)
        for index, (episode, length) in enumerate(zip(episodes, lengths, strict=True)):
            if int(length) > self.context_length:
                raise ValueError(
                    f"episode {index} of the batch ({len(episode.shots)} shots, query {episode.query.text!r:.60}) "
                    f"is {int(length)} tokens, longer than {self.name}'s context of {self.context_length} "
                    "(max_position_embeddings): use fewer shots (data.init_args.shots) or smaller images")

    def answer_token_ids(self, episodes: Sequence[Episode], template: PromptTemplate) -> torch.Tensor:
        """First token of each query's target answer → `[batch]`: as it continues the prompt, or with
        ``template.target: word_start`` as a word of its own (`word_start_token_id`)."""
        if template.target == "word_start":
            ids = [word_start_token_id(self.tokenizer, episode.query.answer) for episode in episodes]
            return torch.tensor(ids, device=self.device)
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
    def fork_logits(self, inputs: BatchFeature, rows: int) -> torch.Tensor:
        """Next-token logits of one prompt's last token scored `rows` times, in one forward → `[rows, vocab]`.

        Head patches touch only the last position, so the prompt's prefix is the same for every row:
        this is the REINFORCE fast path. The sequence is the prompt with its last token repeated `rows`
        times; a 4-D mask lets each copy see the prefix and itself only, and every copy sits at the last
        token's position, so patches with ``rows_along="positions"`` give each copy its own heads. No
        cache is kept and nothing is copied. Needs `shares_prefix` (checked by `can_share_prefix`).
        """
        self._check_one_prompt(inputs, "fork_logits")
        ids = inputs["input_ids"]
        length = ids.shape[1] - 1
        extended = {key: torch.cat([value, value[:, -1:].expand(-1, rows - 1)], dim=1) if self._aligned(key, inputs)
                    else value for key, value in inputs.items() if key != "attention_mask"}
        for module in self._position_caches:  # M-RoPE offsets of an earlier prompt must not leak into this one
            module.rope_deltas = None
        blocked = torch.finfo(self.dtype).min
        causal = torch.full((length, length + rows), blocked, dtype=self.dtype, device=self.device).triu_(1)
        mask = torch.cat([causal[None, None], self._rows_mask(length, rows)], dim=2)
        with self._rows_at_one_position(mask, rows):
            logits = self.model(**extended, use_cache=False, **self._keep(rows)).logits
        return logits[0, -rows:].float()

    def can_share_prefix(self, inputs: BatchFeature, rows: int = 1) -> bool:
        """Whether `rows` copies of this prompt's last token may share its prefix through a 4-D mask: the
        model honours such masks (`shares_prefix`, checked on first use) and no sliding attention window
        is shorter than the sequence (the mask would have to crop the prefix too)."""
        if self.shares_prefix is None:
            self.shares_prefix = self._check_shared_prefix(inputs)
        window = getattr(self.model.config.get_text_config(), "sliding_window", None)
        return self.shares_prefix and not (window and inputs["input_ids"].shape[1] + rows > window)

    @torch.inference_mode()
    def branch_last_token(self, inputs: BatchFeature, rows: int,
                          along: Literal["positions", "batch"] | None = None) -> Branch:
        """Prefill all but the last token of one prompt once; inputs that score its last token `rows` times,
        as often as needed (`branch_logits` crops the scored tokens off again: Function Vectors' head chunks).

        The rows are `rows` extra tokens of the one cached sequence (batch 1), each seeing the prefix and
        itself (a 4-D mask), all at the last token's position, so the prefix's keys and values exist once.
        A model that refuses such a mask (`can_share_prefix`), or a prompt past a sliding attention
        window, gets the cache copied per row. `along` forces one layout (the benchmark compares both).
        """
        self._check_one_prompt(inputs, "branch_last_token")
        if along is None:
            along = "positions" if self.can_share_prefix(inputs) else "batch"
        aligned = [key for key in inputs if self._aligned(key, inputs)]
        prefix = {key: value[:, :-1] if key in aligned else value for key, value in inputs.items()}
        for module in self._position_caches:  # M-RoPE offsets of an earlier prompt must not leak into this one
            module.rope_deltas = None
        cache = getattr(self.model(**prefix, use_cache=True), self.cache_name)
        length = cache.get_seq_length()
        windows = [size for layer in cache.layers if (size := layer.get_max_length()) > 0]
        if along == "positions" and windows and length + rows >= min(windows):
            along = "batch"  # past a sliding window the 4-D mask would have to crop the prefix too
        step = {key: inputs[key][:, -1:] for key in aligned if key != "attention_mask"}
        if along == "batch":  # positions continue from the cache; one prompt has no padding: no mask needed
            cache.batch_repeat_interleave(rows)
            step = {key: value.repeat(rows, 1) for key, value in step.items()}
        else:
            step = {key: value.repeat(1, rows) for key, value in step.items()}
        mask = self._rows_mask(length, rows) if along == "positions" else None
        return Branch({**step, self.cache_name: cache, "use_cache": True}, rows, along, mask)

    def branch_logits(self, branch: Branch) -> torch.Tensor:
        """Next-token logits of every row of a branch → `[rows, vocab]`; the branch can then be scored again."""
        with torch.inference_mode():
            if branch.along == "batch":
                logits = self.last_logits(branch.inputs)
            else:
                with self._rows_at_one_position(branch.mask, branch.rows):
                    logits = self.model(**branch.inputs, **self._keep(branch.rows)).logits[0, -branch.rows:].float()
        branch.inputs[self.cache_name].crop(-(branch.rows if branch.along == "positions" else 1))
        return logits

    @staticmethod
    def _check_one_prompt(inputs: BatchFeature, caller: str) -> None:
        ids = inputs["input_ids"]
        if ids.shape[0] != 1 or not inputs["attention_mask"].all():
            raise ValueError(f"{caller} takes one unpadded prompt, got a batch of shape {tuple(ids.shape)}")

    @staticmethod
    def _aligned(key: str, inputs: BatchFeature) -> bool:
        """Inputs with one entry per token (ids, mask, Fuyu's patch indices, Qwen2-VL's token types)."""
        value = inputs[key]
        return torch.is_tensor(value) and value.shape[:2] == inputs["input_ids"].shape

    def _keep(self, rows: int) -> dict:
        return {"logits_to_keep": rows} if self._last_only else {}

    def _rows_mask(self, length: int, rows: int) -> torch.Tensor:
        """Additive `[1, 1, rows, length + rows]` mask: every row sees the prefix and itself only."""
        blocked = torch.finfo(self.dtype).min
        own = torch.full((rows, rows), blocked, dtype=self.dtype, device=self.device).fill_diagonal_(0)
        prefix = torch.zeros(rows, length, dtype=self.dtype, device=self.device)
        return torch.cat([prefix, own], dim=1)[None, None]

    @contextmanager
    def _rows_at_one_position(self, mask: torch.Tensor, rows: int) -> Iterator[None]:
        """While the decoder runs: `mask` is its attention mask and its last `rows` tokens share the first
        one's position ids, whatever the model computed (plain, or Qwen2-VL's M-RoPE components)."""

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple:
            positions = kwargs.get("position_ids")
            if positions is None:
                cache = decoder_cache(kwargs)
                start = cache.get_seq_length() if cache is not None else 0
                tokens = kwargs.get("inputs_embeds")
                length = (tokens if tokens is not None else kwargs["input_ids"]).shape[1]
                positions = torch.arange(start, start + length, device=mask.device)[None]
            positions = positions.clone()
            positions[..., -rows:] = positions[..., -rows, None]
            return args, {**kwargs, "attention_mask": mask, "position_ids": positions}

        handle = self.model.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    def _check_shared_prefix(self, inputs: BatchFeature) -> bool:
        """Two identical rows over one prefix must score alike and like the plain forward: a model that
        ignores or refuses the 4-D mask or the position ids fails this. Run once per model; the choice is logged."""
        attention = getattr(self.model.config.get_text_config(), "_attn_implementation", None) or "eager"
        if attention not in MASKED_ATTENTION:  # flash attention takes padding masks only
            LOGGER.warning("%s runs attn_implementation=%r, which takes no custom 4-D attention mask: REINFORCE "
                           "copies the prompt cache per sample instead (use one of %s to share it)",
                           self.name, attention, MASKED_ATTENTION)
            return False
        try:
            shared = self.fork_logits(inputs, 2)
        except (TypeError, ValueError, RuntimeError, IndexError) as error:
            LOGGER.warning("%s refuses a custom 4-D attention mask (%s): REINFORCE copies the prompt cache per "
                           "sample instead", self.name, error)
            return False
        plain = self.last_logits(inputs)
        # identical rows in one call agree closely in any precision; another kernel only roughly in bf16
        tight, loose = (1e-5, 1e-4) if self.dtype == torch.float32 else (1e-2, 1e-1)
        scale = float(plain.abs().max()) + 1e-6
        if (shared[0] - shared[1]).abs().max() > tight * scale or (shared - plain).abs().max() > loose * scale:
            LOGGER.warning("%s does not honour a custom 4-D attention mask or position ids (rows over a shared "
                           "prefix score differently): REINFORCE copies the prompt cache per sample instead", self.name)
            return False
        LOGGER.info("%s: mask samples share one prefix (4-D attention mask)", self.name)
        return True

    @torch.inference_mode()
    def generate(self, inputs: BatchFeature, max_new_tokens: int = 10) -> list[str]:
        """Greedy answers, decoded without the prompt and special tokens; at least one token each
        (``min_new_tokens=1``, as the MTV reference generates: an end-of-sequence first is never taken)."""
        output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, min_new_tokens=1, do_sample=False,
                                     pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def logit_lens(self, hidden: torch.Tensor) -> torch.Tensor:
        """Decode residual-stream vectors with the final norm and lm_head → logits."""
        layout = self.layout
        return layout.lm_head(layout.final_norm(hidden.to(layout.lm_head.weight.dtype))).float()
